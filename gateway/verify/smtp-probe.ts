/**
 * One SMTP recipient probe (a "callout"): connect, EHLO, STARTTLS (required or when offered),
 * MAIL FROM:<>, RCPT TO for each address, RSET, QUIT — never DATA, so nothing is delivered.
 * Bounded by a total time limit; never throws: a failure before the RCPT replies is reported
 * as `failure` with the reason, and each RCPT gets its reply code and text.
 */
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  readonly heloName: string;
  readonly tls: "required" | "allow-plain";
  readonly verifyCertificate: boolean;
}

export type ProbeResult =
  | {
      readonly kind: "replies";
      readonly replies: ReadonlyMap<string, { readonly code: number; readonly text: string }>;
    }
  | { readonly kind: "failure"; readonly reason: string };

class LineReader {
  private buffer = "";
  private waiting?: (reply: { code: number; text: string }) => void;
  private failed?: (error: Error) => void;

  constructor(private socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  attach(socket: Socket | TLSSocket): void {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString("latin1");
      this.drain();
    });
    socket.on("error", (error) => this.failed?.(error));
    socket.on("close", () => this.failed?.(new Error("connection closed")));
  }

  detach(): void {
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("error");
    this.socket.removeAllListeners("close");
  }

  private drain(): void {
    const lines = this.buffer.split("\r\n");
    for (let i = 0; i < lines.length - 1; i++) {
      const line = lines[i] ?? "";
      if (/^\d{3} /.test(line) || /^\d{3}$/.test(line)) {
        const text = lines
          .slice(0, i + 1)
          .map((l) => l.slice(4))
          .join("\n");
        this.buffer = lines.slice(i + 1).join("\r\n");
        const resolve = this.waiting;
        this.waiting = undefined;
        resolve?.({ code: Number(line.slice(0, 3)), text });
        return;
      }
    }
  }

  next(): Promise<{ code: number; text: string }> {
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
      this.drain();
    });
  }

  async command(line: string): Promise<{ code: number; text: string }> {
    this.socket.write(`${line}\r\n`);
    return this.next();
  }
}

export async function probeRecipients(
  target: ProbeTarget,
  addresses: readonly string[],
  timeoutMs: number,
): Promise<ProbeResult> {
  let socket: Socket | TLSSocket = netConnect(target.port, target.host);
  const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const reader = new LineReader(socket);
    const expect = (reply: { code: number; text: string }, step: string) => {
      if (reply.code >= 400) throw new Error(`${step}: ${reply.code} ${reply.text}`);
    };
    expect(await reader.next(), "greeting");
    let ehlo = await reader.command(`EHLO ${target.heloName}`);
    expect(ehlo, "EHLO");
    if (/(^|\n)STARTTLS\b/i.test(ehlo.text)) {
      expect(await reader.command("STARTTLS"), "STARTTLS");
      reader.detach();
      const plain = socket;
      socket = await new Promise<TLSSocket>((resolve, reject) => {
        const secure = tlsConnect(
          {
            socket: plain,
            servername: target.host,
            minVersion: "TLSv1.2",
            rejectUnauthorized: target.verifyCertificate,
          },
          () => resolve(secure),
        );
        secure.once("error", reject);
      });
      reader.attach(socket);
      ehlo = await reader.command(`EHLO ${target.heloName}`);
      expect(ehlo, "EHLO after STARTTLS");
    } else if (target.tls === "required") {
      throw new Error(`${target.host} does not offer STARTTLS, which is required`);
    }
    expect(await reader.command("MAIL FROM:<>"), "MAIL FROM");
    const replies = new Map<string, { code: number; text: string }>();
    for (const address of addresses) replies.set(address, await reader.command(`RCPT TO:<${address}>`));
    await reader.command("RSET").catch(() => undefined);
    socket.write("QUIT\r\n");
    return { kind: "replies", replies };
  } catch (error) {
    return { kind: "failure", reason: (error as Error).message };
  } finally {
    clearTimeout(timer);
    socket.end();
    socket.destroy();
  }
}
