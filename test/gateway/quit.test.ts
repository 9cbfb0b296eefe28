/**
 * After QUIT the connection is closed once the 221 is written (quit.ts), as Postfix's smtpd
 * closes it, instead of smtp-server's half-close that waits up to 5 s for the client's side:
 * the client still gets its 221 whole, the session's onClose still runs (the per-client limits
 * count on it), and the server holds no socket for a client that keeps its side open. A real
 * smtp-server on loopback, spoken to raw.
 */
import { type AddressInfo, type Socket, connect } from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { closeAfterQuit } from "../../gateway/inbound/quit";
import { makeCertificate } from "../helpers/tls";

let server: SMTPServer | undefined;
let dir: string | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function listen(tls = false) {
  const closed: string[] = [];
  let certificate: { key: Buffer; cert: Buffer } | undefined;
  if (tls) {
    dir = mkdtempSync(join(tmpdir(), "moat-quit-"));
    const made = makeCertificate(dir, "quit", "mx.quit.test");
    certificate = { key: readFileSync(made.keyFile), cert: readFileSync(made.certFile) };
  }
  server = new SMTPServer({
    authOptional: true,
    disabledCommands: tls ? ["AUTH"] : ["AUTH", "STARTTLS"],
    ...(certificate ?? {}),
    logger: false,
    disableReverseLookup: true,
    onClose(session) {
      closed.push(session.id);
    },
  });
  closeAfterQuit();
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { port: (server.server.address() as AddressInfo).port, closed };
}

/** Everything `socket` receives, and whether it ended (the server's FIN or close). */
function received(socket: Socket) {
  const state = { text: "", ended: false };
  socket.on("data", (chunk: Buffer) => (state.text += chunk.toString("latin1")));
  socket.on("end", () => (state.ended = true));
  socket.on("close", () => (state.ended = true));
  socket.on("error", () => undefined);
  return state;
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 2000): Promise<void> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const openSockets = () =>
  new Promise<number>((resolve, reject) =>
    server!.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );

describe("QUIT", () => {
  it("closes the connection once the 221 is written, while the client keeps its side open", async () => {
    const { port, closed } = await listen();
    // allowHalfOpen: the client does not close its side when the server's FIN comes.
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    const state = received(socket);
    await until(() => state.text.includes("220 "), "the greeting");
    socket.write("EHLO client.example\r\n");
    await until(() => /^250 /m.test(state.text), "the EHLO reply");
    socket.write("QUIT\r\n");
    await until(() => state.ended, "the end of the stream");
    expect(state.text).toMatch(/\r\n221 [^\r\n]*\r\n$/);
    expect(socket.writable).toBe(true); // its side is still open
    // smtp-server alone keeps the half-closed socket for up to 5 s; here it is closed at once.
    await until(async () => (await openSockets()) === 0, "the server's socket closed", 1000);
    await until(() => closed.length === 1, "the session's onClose");
    socket.destroy();
  });

  it("gives a client that closes at once (Postfix's smtp_skip_quit_response) no error, and still ends the session", async () => {
    const { port, closed } = await listen();
    const errors: Error[] = [];
    server!.on("error", (error) => errors.push(error));
    const socket = connect({ port, host: "127.0.0.1" });
    const state = received(socket);
    await until(() => state.text.includes("220 "), "the greeting");
    socket.write("EHLO client.example\r\nQUIT\r\n");
    socket.resetAndDestroy(); // gone before the 221: its kernel answers the reply with a reset
    await until(() => closed.length === 1, "the session's onClose");
    expect(await openSockets()).toBe(0);
    expect(errors).toEqual([]);
  });

  it("over STARTTLS, the client gets the 221 whole before the connection closes", async () => {
    const { port, closed } = await listen(true);
    const plain = connect({ port, host: "127.0.0.1" });
    const before = received(plain);
    await until(() => before.text.includes("220 "), "the greeting");
    plain.write("EHLO client.example\r\n");
    await until(() => /^250 /m.test(before.text), "the EHLO reply");
    plain.write("STARTTLS\r\n");
    await until(() => /\r\n220 /.test(before.text), "the STARTTLS reply");
    plain.removeAllListeners("data");
    const secure = tlsConnect({ socket: plain, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => secure.once("secureConnect", resolve).once("error", reject));
    const state = { text: "", ended: false };
    secure.on("data", (chunk: Buffer) => (state.text += chunk.toString("latin1")));
    secure.on("close", () => (state.ended = true));
    secure.on("error", () => undefined);
    secure.write("EHLO client.example\r\n");
    await until(() => /^250 /m.test(state.text), "the EHLO reply over TLS");
    secure.write("QUIT\r\n");
    await until(() => state.ended, "the end of the connection");
    expect(state.text).toMatch(/\r\n221 [^\r\n]*\r\n$/);
    await until(() => closed.length === 1, "the session's onClose");
    expect(await openSockets()).toBe(0);
  });
});
