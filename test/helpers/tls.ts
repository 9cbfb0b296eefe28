/** Test certificates (openssl, from Debian) and a raw STARTTLS probe that reports what the server presented. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";

export function makeCertificate(
  dir: string,
  name: string,
  commonName: string,
  subjectAltName = `DNS:${commonName}`,
): { certFile: string; keyFile: string; certPem: string; keyPem: string } {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      `/CN=${commonName}`,
      "-addext",
      `subjectAltName=${subjectAltName}`,
    ],
    { stdio: "ignore" },
  );
  return { certFile, keyFile, certPem: readFileSync(certFile, "utf8"), keyPem: readFileSync(keyFile, "utf8") };
}

export interface StartTlsResult {
  readonly ehlo: string;
  readonly fingerprint256: string;
  readonly protocol: string | null;
  readonly subjectCN: string;
}

/** EHLO, STARTTLS, handshake; resolves with the server certificate. Bounded in time. */
export function probeStartTls(port: number, timeoutMs = 5000): Promise<StartTlsResult> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("STARTTLS probe timed out"));
    }, timeoutMs);
    let buffer = "";
    let step = 0;
    let ehlo = "";
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      if (!/\r\n$/.test(buffer) || /^\d{3}-/m.test(buffer.split("\r\n").filter(Boolean).at(-1) ?? "")) return;
      const reply = buffer;
      buffer = "";
      if (step === 0) socket.write("EHLO probe.test\r\n");
      else if (step === 1) {
        ehlo = reply;
        socket.write("STARTTLS\r\n");
      } else if (step === 2) {
        if (!reply.startsWith("220")) return reject(new Error(`STARTTLS refused: ${reply}`));
        socket.removeAllListeners("data");
        const secure = tlsConnect({ socket, servername: "mx.northwind.example", rejectUnauthorized: false }, () => {
          const peer = secure.getPeerCertificate();
          clearTimeout(timer);
          resolve({
            ehlo,
            fingerprint256: peer.fingerprint256,
            protocol: secure.getProtocol(),
            subjectCN: String(peer.subject?.CN ?? ""),
          });
          secure.end("QUIT\r\n");
        });
        secure.on("error", reject);
      }
      step++;
    });
  });
}
