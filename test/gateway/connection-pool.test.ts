import { type AddressInfo, type Server, type Socket, createServer } from "node:net";
import { Readable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createConnectionPool } from "../../gateway/delivery/smtp-client";

/**
 * A smart host spoken to on a raw socket, so the test sees every command the pool sends (RSET
 * included, which smtp-server does not report), with PIPELINING as Exchange Online offers it.
 */
async function recordingSmartHost(
  options: { readonly dropOnRset?: boolean } = {},
): Promise<{ server: Server; port: number; commands: string[]; sessions: () => number }> {
  const commands: string[] = [];
  let sessions = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sessions++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let inData = false;
    let pending = "";
    socket.write("220 smart.host.test ESMTP\r\n");
    socket.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = pending.indexOf("\r\n.\r\n");
          if (end < 0) return;
          pending = pending.slice(end + 5);
          inData = false;
          socket.write("250 2.0.0 queued\r\n");
          continue;
        }
        const eol = pending.indexOf("\r\n");
        if (eol < 0) return;
        const line = pending.slice(0, eol);
        pending = pending.slice(eol + 2);
        const verb = line.split(/[ :]/)[0]?.toUpperCase() ?? "";
        commands.push(verb);
        if (verb === "EHLO") socket.write("250-smart.host.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        else if (verb === "DATA") {
          inData = true;
          socket.write("354 go ahead\r\n");
        } else if (verb === "QUIT") socket.end("221 bye\r\n");
        else if (verb === "RSET" && options.dropOnRset) socket.end("421 4.4.2 idle too long, closing\r\n");
        else socket.write("250 ok\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const close = server.close.bind(server);
  server.close = (callback) => {
    for (const socket of sockets) socket.destroy();
    return close(callback);
  };
  return { server, port: (server.address() as AddressInfo).port, commands, sessions: () => sessions };
}

let host: Awaited<ReturnType<typeof recordingSmartHost>> | undefined;
afterEach(async () => {
  await new Promise((resolve) => host?.server.close(resolve));
  host = undefined;
});

/** One message to jo@acme.com through the pool, to the recording smart host on `port`. */
function sendThrough(pool: ReturnType<typeof createConnectionPool>, port: number, subject: string) {
  const target = {
    host: "127.0.0.1",
    port,
    tls: "allow-plain" as const,
    verifyCertificate: false,
    heloName: "gw.test",
  };
  return pool.attempt(target, { mailFrom: "a@outside.example", rcptTo: ["jo@acme.com"] }, () =>
    Readable.from([Buffer.from(`Subject: ${subject}\r\n\r\nbody\r\n`)]),
  );
}

describe("the connection pool to the smart host", () => {
  it("sends the next message on a session just used at once, and probes one idle for longer with RSET first", async () => {
    host = await recordingSmartHost();
    const pool = createConnectionPool({ probeAfterIdleMs: 200 });
    const port = host.port;
    const send = async (n: number) => {
      const result = await sendThrough(pool, port, String(n));
      expect(result.outcomes.get("jo@acme.com")?.outcome).toBe("delivered");
    };
    await send(1);
    await send(2);
    await send(3);
    // One session; after a transaction that ended with its 250 the next MAIL follows directly.
    expect(host.sessions()).toBe(1);
    expect(host.commands).toEqual(["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA"]);
    await new Promise((r) => setTimeout(r, 300));
    await send(4);
    expect(host.sessions()).toBe(1);
    expect(host.commands.slice(10)).toEqual(["RSET", "MAIL", "RCPT", "DATA"]);
    await pool.close();
  });

  it("opens a new session when an idle one fails its RSET, and the message still goes", async () => {
    host = await recordingSmartHost({ dropOnRset: true });
    const pool = createConnectionPool({ probeAfterIdleMs: 0 });
    const port = host.port;
    const send = () => sendThrough(pool, port, "x");
    expect((await send()).outcomes.get("jo@acme.com")?.outcome).toBe("delivered");
    await new Promise((r) => setTimeout(r, 20));
    expect((await send()).outcomes.get("jo@acme.com")?.outcome).toBe("delivered");
    expect(host.sessions()).toBe(2);
    expect(host.commands).toEqual(["EHLO", "MAIL", "RCPT", "DATA", "RSET", "EHLO", "MAIL", "RCPT", "DATA"]);
    await pool.close();
  });
});
