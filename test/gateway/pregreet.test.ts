/**
 * The pregreet test, remembered (pregreet.ts): a client that talks before the greeting is cut
 * off; one that waited and was admitted is greeted at once on its next connections, for a day;
 * one that was refused is not remembered. A real smtp-server on loopback, spoken to raw.
 */
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { afterEach, describe, expect, it } from "vitest";
import { PASS_TTL_MS, createPregreetMemory, greetPassedClientsAtOnce } from "../../gateway/inbound/pregreet";
import { openRawSession } from "../helpers/raw-smtp";

let server: SMTPServer | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A listener that admits everyone, or refuses everyone while `refuse.now` is set. */
async function listen(memory = createPregreetMemory(), refuse = { now: false }) {
  server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["AUTH", "STARTTLS"],
    logger: false,
    disableReverseLookup: true, // the greeting waits for nothing else here
    onConnect(_session, callback) {
      callback(refuse.now ? Object.assign(new Error("go away"), { responseCode: 554 }) : null);
    },
  });
  greetPassedClientsAtOnce(server, memory);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return { port: (server.server.address() as AddressInfo).port, memory };
}

describe("the pregreet test", () => {
  it("cuts off a new client that talks first, and greets one that waited at once next time", async () => {
    const { port, memory } = await listen();

    const early = await openRawSession(port);
    expect(await early.send("EHLO early.example")).toMatch(/^421 .*talk too soon/);
    early.close();
    expect(memory.known("127.0.0.1")).toBe(false);

    const patient = await openRawSession(port);
    expect(await patient.reply()).toMatch(/^220 /);
    expect(await patient.send("QUIT")).toMatch(/^221 /);
    patient.close();
    expect(memory.known("127.0.0.1")).toBe(true);

    // Known now: greeted without the wait, so talking at once is no longer talking early.
    const known = await openRawSession(port);
    expect(await known.send("EHLO again.example")).toMatch(/^220 /);
    expect(await known.reply()).toMatch(/^250[- ]/);
    known.close();
  });

  it("does not remember a client that onConnect refused", async () => {
    const refuse = { now: true };
    const { port, memory } = await listen(createPregreetMemory(), refuse);
    const refused = await openRawSession(port);
    expect(await refused.reply()).toMatch(/^554 /);
    refused.close();
    expect(memory.known("127.0.0.1")).toBe(false);
  });

  it("forgets a pass after a day, and the oldest passes first when full", () => {
    let now = 1_000_000;
    const memory = createPregreetMemory(() => now, 2);
    memory.passed("192.0.2.1");
    now += PASS_TTL_MS - 1;
    expect(memory.known("192.0.2.1")).toBe(true);
    now += 1;
    expect(memory.known("192.0.2.1")).toBe(false);

    memory.passed("192.0.2.1");
    memory.passed("192.0.2.2");
    memory.passed("192.0.2.1"); // passed again: now the newest
    memory.passed("192.0.2.3");
    expect(memory.known("192.0.2.2")).toBe(false);
    expect(memory.known("192.0.2.1")).toBe(true);
    expect(memory.known("192.0.2.3")).toBe(true);
  });
});
