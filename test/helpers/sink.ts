/**
 * A real SMTP sink on loopback for tests: records every message with its envelope; can
 * refuse chosen recipients (permanently or temporarily), and offer STARTTLS or not.
 */
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface SunkMessage {
  readonly mailFrom: string;
  readonly rcptTo: string[];
  readonly raw: string;
  readonly secure: boolean;
}

export interface Sink {
  readonly port: number;
  readonly messages: SunkMessage[];
  /** Every RCPT TO the sink was asked, accepted or not. */
  readonly rcptAttempts: string[];
  /** SMTP sessions opened to the sink so far. */
  readonly connections: () => number;
  /** Resolves when `count` messages have arrived, rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<SunkMessage[]>;
  close(): Promise<void>;
}

export async function startSink(
  options: {
    refuse?: Record<string, number>;
    starttls?: boolean;
    mailboxes?: string[];
    tls?: { key: string; cert: string };
    port?: number;
  } = {},
): Promise<Sink> {
  const messages: SunkMessage[] = [];
  const rcptAttempts: string[] = [];
  let connections = 0;
  const waiters: (() => void)[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: options.starttls || options.tls ? ["AUTH"] : ["AUTH", "STARTTLS"],
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
    logger: false,
    // A gateway keeps its session open for reuse; closing the sink must not wait for it.
    closeTimeout: 500,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onRcptTo(address, _session, callback) {
      rcptAttempts.push(address.address);
      if (options.mailboxes && !options.mailboxes.includes(address.address.toLowerCase())) {
        // What Exchange Online answers for an address it does not have.
        callback(Object.assign(new Error("5.4.1 Recipient address rejected: Access denied."), { responseCode: 550 }));
        return;
      }
      const code = options.refuse?.[address.address];
      if (code) callback(Object.assign(new Error(`refused by test sink <${address.address}>`), { responseCode: code }));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        messages.push({
          mailFrom: session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address,
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString("utf8"),
          secure: Boolean(session.secure),
        });
        for (const wake of waiters.splice(0)) wake();
        callback(null, "Ok: sunk");
      });
    },
  });
  // A client that dies mid-session (a SIGKILLed gateway) resets its connection: smtp-server
  // reports that as an 'error' event, which must not become an uncaught exception here.
  server.on("error", () => undefined);
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", () => resolve()));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    rcptAttempts,
    connections: () => connections,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`sink: expected ${count} message(s), got ${messages.length} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return messages;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
