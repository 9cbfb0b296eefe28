/** A raw SMTP conversation over a socket, for tests that send what no client library would. */
import { connect } from "node:net";

export interface RawSession {
  /** Sends one line (or raw bytes) and resolves with the next complete reply. */
  send(line: string | Buffer): Promise<string>;
  /** The next complete reply without sending anything. */
  reply(): Promise<string>;
  close(): void;
}

const REPLY_TIMEOUT_MS = 5000;

export async function openRawSession(port: number): Promise<RawSession> {
  const socket = connect(port, "127.0.0.1");
  let buffer = "";
  let waiter: ((reply: string) => void) | undefined;
  const complete = () => {
    const lines = buffer.split("\r\n");
    for (let i = 0; i < lines.length - 1; i++) {
      if (/^\d{3}(?: |$)/.test(lines[i] ?? "")) {
        const reply = lines.slice(0, i + 1).join("\r\n");
        buffer = lines.slice(i + 1).join("\r\n");
        return reply;
      }
    }
    return undefined;
  };
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString("latin1");
    const reply = waiter && complete();
    if (reply !== undefined && waiter) {
      const resolve = waiter;
      waiter = undefined;
      resolve(reply);
    }
  });
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const ready = complete();
      if (ready !== undefined) return resolve(ready);
      const timer = setTimeout(() => reject(new Error(`no reply within ${REPLY_TIMEOUT_MS} ms`)), REPLY_TIMEOUT_MS);
      waiter = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      socket.once("close", () => reject(new Error("connection closed")));
    });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => undefined);
  return {
    send(line) {
      socket.write(typeof line === "string" ? `${line}\r\n` : line);
      return next();
    },
    reply: next,
    close: () => socket.destroy(),
  };
}
