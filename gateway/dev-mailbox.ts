/**
 * The local development mailbox: a plain SMTP sink on loopback that stores every message it
 * receives as an .eml file, so someone trying `npm start` sees delivered mail arrive. It
 * stands in for Exchange Online in the embedded default only; it is never part of a
 * deployed gateway.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { SMTPServer } from "smtp-server";

export interface DevMailbox {
  readonly dir: string;
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function startDevMailbox(options: { host: string; port: number; dir: string }): Promise<DevMailbox> {
  await mkdir(options.dir, { recursive: true });
  const server = new SMTPServer({
    name: "dev-mailbox.localhost",
    banner: "Moat development mailbox (stands in for Exchange Online)",
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const name = `${new Date().toISOString().replace(/[:.]/g, "-")}-${randomBytes(3).toString("hex")}.eml`;
      const rcpts = session.envelope.rcptTo.map((r) => r.address).join(", ");
      const out = createWriteStream(join(options.dir, name));
      out.write(`X-Moat-Dev-Mailbox-Rcpt-To: ${rcpts}\r\n`);
      pipeline(stream, out).then(
        () => callback(null, `Ok: stored as ${name}`),
        (error: Error) => callback(Object.assign(new Error(error.message), { responseCode: 451 })),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  // A sender that resets its connection is smtp-server's 'error' event: never a crash of `npm start`.
  server.on("error", () => undefined);
  return {
    dir: options.dir,
    address: server.server.address() as AddressInfo,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
