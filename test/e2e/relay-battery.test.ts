/**
 * No open relay: the classic relay tests, spoken raw so that no client library tidies the
 * addresses first; a client that talks before the greeting is cut off; and a listener that
 * survives garbage and keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { openRawSession } from "../helpers/raw-smtp";

let gateway: GatewayProcess;

beforeAll(async () => {
  gateway = await startGatewayProcess(["--config", writeTestConfig({ smartHostPort: 9 }).file], {});
});
afterAll(async () => {
  await gateway?.stop();
});

const RELAY_ATTEMPTS = [
  "victim@gmail.com",
  "victim%gmail.com@northwind.example",
  "gmail.com!victim@northwind.example",
  '"victim@gmail.com"@northwind.example',
  "@northwind.example:victim@gmail.com",
  "victim@gmail.com@northwind.example",
  "anna.berg@northwind.example.gmail.com",
  "anna.berg@NORTHWIND.EXAMPLE.",
  "postmaster@[127.0.0.1]",
  "victim",
];

describe("the pregreet test", () => {
  // First in this file: a client that has not yet waited for a greeting here (pregreet.ts).
  it("cuts off a client that talks before the greeting", async () => {
    const session = await openRawSession(gateway.smtpPort);
    expect(await session.send("EHLO early.example")).toMatch(/^421 .*talk too soon/);
    session.close();
  });
});

describe("open relay battery", () => {
  it("refuses every classic relay address, from an outside client with a foreign sender", async () => {
    const session = await openRawSession(gateway.smtpPort);
    try {
      expect(await session.reply()).toMatch(/^220 /);
      expect(await session.send("EHLO relay-tester.example")).toMatch(/^250/);
      expect(await session.send("MAIL FROM:<spammer@outside.example>")).toMatch(/^250 /);
      const accepted: string[] = [];
      for (const address of RELAY_ATTEMPTS) {
        const reply = await session.send(`RCPT TO:<${address}>`);
        if (reply.startsWith("2")) accepted.push(`${address} -> ${reply}`);
        else expect(reply, address).toMatch(/^5\d\d /);
      }
      expect(accepted).toEqual([]);
      // Nothing was accepted, so there is no transaction to send.
      expect(await session.send("DATA")).toMatch(/^503 /);
    } finally {
      session.close();
    }
  });
});

describe("hostile input on the listener", () => {
  it("answers garbage, over-long lines and bad sequences with errors, and still serves a normal transaction", async () => {
    const session = await openRawSession(gateway.smtpPort);
    try {
      await session.reply();
      expect(await session.send("HELLO?")).toMatch(/^5\d\d /);
      expect(await session.send("RCPT TO:<anna.berg@northwind.example>")).toMatch(/^503 /); // before MAIL
      expect(await session.send(`EHLO ${"x".repeat(5000)}`)).toMatch(/^5\d\d /);
      expect(await session.send(Buffer.from([0x00, 0xff, 0xfe, 0x0d, 0x0a]))).toMatch(/^5\d\d /);
      expect(await session.send("MAIL FROM:<not an address>")).toMatch(/^5\d\d /);
      expect(await session.send("EHLO client.test")).toMatch(/^250/);
      expect(await session.send("MAIL FROM:<sender@outside.example>")).toMatch(/^250 /);
      expect(await session.send("RCPT TO:<anna.berg@northwind.example>")).toMatch(/^250 /);
      expect(await session.send("DATA")).toMatch(/^354 /);
      expect(await session.send("Subject: after the garbage\r\n\r\nstill here\r\n.")).toMatch(
        /^250 2\.0\.0 Ok: queued as /,
      );
      expect(await session.send("QUIT")).toMatch(/^221 /);
    } finally {
      session.close();
    }
  });
});
