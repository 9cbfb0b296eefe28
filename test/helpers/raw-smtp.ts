/**
 * A raw SMTP conversation over a socket, for tests that send what no client library would,
 * and for the benchmarks' load client (bench/peers.ts), which needs exact timings.
 */
import { type Socket, connect } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";

export interface RawSession {
  /** Sends one line (or raw bytes) and resolves with the next complete reply. */
  send(line: string | Buffer): Promise<string>;
  /** The next complete reply without sending anything. */
  reply(): Promise<string>;
  /** STARTTLS, then the session continues over TLS (any certificate: loopback benchmarks). */
  startTls(): Promise<void>;
  close(): void;
}

const REPLY_TIMEOUT_MS = 5000;

export async function openRawSession(port: number, replyTimeoutMs = REPLY_TIMEOUT_MS): Promise<RawSession> {
  let socket: Socket | TLSSocket = connect(port, "127.0.0.1");
  let buffer = "";
  let waiter: { resolve: (reply: string) => void; reject: (error: Error) => void } | undefined;
  const complete = () => {
    let start = 0;
    for (let end = buffer.indexOf("\r\n"); end >= 0; end = buffer.indexOf("\r\n", start)) {
      const line = buffer.slice(start, end);
      start = end + 2;
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = buffer.slice(0, end);
        buffer = buffer.slice(start);
        return reply;
      }
    }
    return undefined;
  };
  const settle = (outcome: { reply: string } | { error: Error }) => {
    const current = waiter;
    waiter = undefined;
    if (!current) return;
    if ("reply" in outcome) current.resolve(outcome.reply);
    else current.reject(outcome.error);
  };
  const attach = (s: Socket | TLSSocket) => {
    s.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("latin1");
      if (!waiter) return;
      const reply = complete();
      if (reply !== undefined) settle({ reply });
    });
    s.on("close", () => settle({ error: new Error("connection closed") }));
    s.on("error", () => undefined);
  };
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const ready = complete();
      if (ready !== undefined) return resolve(ready);
      const timer = setTimeout(
        () => settle({ error: new Error(`no reply within ${replyTimeoutMs} ms`) }),
        replyTimeoutMs,
      );
      waiter = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  attach(socket);
  return {
    send(line) {
      socket.write(typeof line === "string" ? `${line}\r\n` : line);
      return next();
    },
    reply: next,
    async startTls() {
      socket.write("STARTTLS\r\n");
      const reply = await next();
      if (!reply.startsWith("220")) throw new Error(`STARTTLS refused: ${reply}`);
      const plain = socket;
      plain.removeAllListeners("data");
      plain.removeAllListeners("close");
      socket = tlsConnect({ socket: plain, rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        socket.once("secureConnect", resolve);
        socket.once("error", reject);
      });
      attach(socket);
    },
    close: () => socket.destroy(),
  };
}
