/**
 * The verdict reads a message while it arrives: readers of the spool's arriving message get it
 * whole from its first byte (from memory, then from the tmp file), wait for the sender, end with
 * the message and fail when it never arrives whole; the spool's writes keep their order.
 */
import { randomBytes } from "node:crypto";
import { constants, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import type { Scanner, Verdict } from "../../gateway/filters/pipeline";
import type { MessageSource } from "../../gateway/filters/source";
import { createScanStage } from "../../gateway/inbound/scan-stage";
import { arrivingMessage } from "../../gateway/queue/arriving";
import { batchedWriter } from "../../gateway/queue/batched-writer";
import { openSpoolFile } from "../../gateway/queue/fd-calls";
import { SpoolSizeExceededError, createSpool } from "../../gateway/queue/spool";
import { waitUntil } from "../helpers/gateway-process";

const WRITE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;

const envelope = {
  mailFrom: "a@outside.example",
  rcptTo: ["jo@acme.com"],
  receivedAt: new Date().toISOString(),
  client: { ip: "192.0.2.1", helo: "mx.outside.example", tls: false },
};

/** Reads a stream whole, calling `first` when its first chunk comes. */
async function readAll(stream: Readable, first: () => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    if (chunks.length === 0) first();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("a message while it arrives", () => {
  it("gives every reader the whole message, from memory and then from the file, as it is written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-arriving-"));
    const path = join(dir, "message");
    const handle = await openSpoolFile(path, WRITE_NEW, 0o600);
    const header = Buffer.from("HEADER\n");
    await handle.writev([header]);
    const arriving = arrivingMessage(path, header.length, 100_000);
    let written = 0;
    let firstSeenAfter = -1;
    const earlyRead = readAll(arriving.source.open(), () => (firstSeenAfter = written)); // before anything arrived
    const chunks = Array.from({ length: 20 }, () => randomBytes(30_000)); // 600 KB: most beyond memory, in more than one read
    const writer = batchedWriter(handle, (chunk) => arriving.appended(chunk));
    for (const chunk of chunks) {
      await writer.write(chunk);
      await writer.flush();
      written++;
      await tick();
    }
    arriving.finish();
    await handle.close();
    const whole = Buffer.concat(chunks);
    expect((await earlyRead).equals(whole)).toBe(true);
    expect(firstSeenAfter).toBeLessThan(chunks.length); // it read before the sender was done
    expect((await buffer(arriving.source.open())).equals(whole)).toBe(true); // a late reader too
    expect(await arriving.source.complete).toBe(whole.length);
    expect(readFileSync(path).subarray(header.length).equals(whole)).toBe(true);
  });

  it("gives readers a message that fits in memory as it comes, ending when the sender is done, not the disk", async () => {
    // Nothing is ever written to this file: what fits in memory is read without it.
    const arriving = arrivingMessage(join(tmpdir(), "moat-never-written"), 0, 10_000);
    const chunks = [Buffer.from("Subject: hi\r\n\r\n"), Buffer.from("body\r\n")];
    for (const chunk of chunks) expect(arriving.received(chunk)).toBe(true);
    arriving.receivedAll();
    expect(await arriving.source.complete).toBe(Buffer.concat(chunks).length);
    expect((await buffer(arriving.source.open())).equals(Buffer.concat(chunks))).toBe(true);

    // Beyond the memory limit the rest comes from the file once written, and the end after it.
    const dir = mkdtempSync(join(tmpdir(), "moat-arriving-"));
    const path = join(dir, "message");
    const handle = await open(path, "w");
    const large = arrivingMessage(path, 0, 10_000);
    const head = randomBytes(6_000);
    const rest = randomBytes(6_000);
    const reading = buffer(large.source.open());
    let ended = false;
    void large.source.complete.then(() => (ended = true));
    expect(large.received(head)).toBe(true);
    expect(large.received(rest)).toBe(false); // does not fit: told about once written
    large.receivedAll();
    for (let i = 0; i < 5; i++) await tick();
    expect(ended).toBe(false);
    await handle.write(Buffer.concat([head, rest]));
    large.appended(rest);
    large.finish();
    await handle.close();
    expect((await reading).equals(Buffer.concat([head, rest]))).toBe(true);
    expect(ended).toBe(true);
  });

  it("fails its readers when the message never arrives whole", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-arriving-"));
    const path = join(dir, "message");
    const handle = await open(path, "w");
    const arriving = arrivingMessage(path, 0, 1024);
    const reading = buffer(arriving.source.open()).then(
      () => undefined,
      (error: Error) => error,
    );
    await handle.write(Buffer.from("partial"));
    arriving.appended(Buffer.from("partial"));
    arriving.fail(new Error("connection lost"));
    await handle.close();
    expect((await reading)?.message).toBe("connection lost");
    await expect(arriving.source.complete).rejects.toThrow("connection lost");
  });

  it("writes in order however the chunks come, and reports a failed write", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-arriving-"));
    const path = join(dir, "message");
    const handle = await openSpoolFile(path, WRITE_NEW, 0o600);
    const seen: Buffer[] = [];
    const writer = batchedWriter(handle, (chunk) => seen.push(chunk));
    const chunks = Array.from({ length: 200 }, (_, i) => Buffer.alloc(8_000 + i, i % 251));
    for (const chunk of chunks) await writer.write(chunk); // most wait while one write is under way
    await writer.flush();
    await handle.close();
    expect(readFileSync(path).equals(Buffer.concat(chunks))).toBe(true);
    expect(seen.length).toBe(chunks.length);
    expect(seen.every((chunk, i) => chunk === chunks[i])).toBe(true); // each reported once written, in order

    const closed = await openSpoolFile(join(dir, "closed"), WRITE_NEW, 0o600);
    await closed.close();
    const failing = batchedWriter(closed, () => undefined);
    await failing.write(Buffer.from("x")).catch(() => undefined);
    await expect(failing.flush()).rejects.toThrow("written after it was closed");
    expect(readFileSync(join(dir, "closed")).length).toBe(0);
  });
});

describe("the spool's verdict during the transfer", () => {
  it("starts reading before the message has arrived, and the decision sees it whole", async () => {
    const spool = createSpool(mkdtempSync(join(tmpdir(), "moat-spool-")));
    await spool.recover();
    const body = new PassThrough();
    const parts = Array.from({ length: 40 }, () => randomBytes(16_000)); // 640 KB: beyond the memory head
    let sent = 0;
    let sentWhenFirstRead = -1;
    const decide = async (source: MessageSource) => {
      const seen = await readAll(source.open(), () => (sentWhenFirstRead = sent));
      return seen.equals(Buffer.concat([Buffer.from("Received: x\r\n"), ...parts]))
        ? ({ to: "quarantine" } as const)
        : ({ refuse: new Error("the verdict saw other bytes") } as const);
    };
    const accepted = spool.accept(envelope, Buffer.from("Received: x\r\n"), body, () => false, undefined, decide);
    for (const [index, part] of parts.entries()) {
      // The last part waits until the verdict has read something: it must not need the whole
      // message to start (bounded; a slow machine only makes the wait longer, never the result).
      if (index === parts.length - 1) await waitUntil(() => sentWhenFirstRead >= 0, "the verdict to start reading");
      body.write(part);
      sent++;
      await tick();
    }
    body.end();
    const { id, state } = await accepted;
    expect(state).toBe("quarantine");
    expect(sentWhenFirstRead).toBeGreaterThanOrEqual(0);
    expect(sentWhenFirstRead).toBeLessThan(parts.length);
    const stored = await buffer((await spool.read("quarantine", id)).openMessage());
    expect(stored.equals(Buffer.concat([Buffer.from("Received: x\r\n"), ...parts]))).toBe(true);
  });

  it("refuses an oversized message whatever the verdict, keeping nothing; the verdict's reader fails", async () => {
    const spool = createSpool(mkdtempSync(join(tmpdir(), "moat-spool-")));
    await spool.recover();
    let seen = 0;
    const stream = Readable.from(Array.from({ length: 6 }, () => Buffer.alloc(1000, 97))).on("data", () => seen++);
    let readerError: Error | undefined;
    const decide = async (source: MessageSource) => {
      await buffer(source.open()).catch((error: Error) => (readerError = error));
      return { to: "incoming" } as const;
    };
    await expect(
      spool.accept(envelope, Buffer.alloc(0), stream, () => seen > 3, undefined, decide),
    ).rejects.toBeInstanceOf(SpoolSizeExceededError);
    await tick();
    expect(readerError).toBeInstanceOf(SpoolSizeExceededError);
    expect(await spool.list("incoming")).toEqual([]);
    expect(readdirSync(spool.dir("tmp"))).toEqual([]);
  });
});

describe("the scan stage's clock", () => {
  const input = {
    mailFrom: "a@outside.example",
    rcptTo: ["jo@acme.com"],
    clientIp: "192.0.2.1",
    helo: "mx.outside.example",
    tls: false,
    direction: "inbound" as const,
  };
  const clean: Verdict = { category: "clean", action: "deliver", reasons: [], headers: [], engineFailures: [] };
  /** A source whose message is all in after `arrivesAfterMs`, and a scanner that needs `scanMs` after that. */
  const run = async (arrivesAfterMs: number, scanMs: number, timeoutMs: number) => {
    const complete = new Promise<number>((resolve) => setTimeout(() => resolve(1), arrivesAfterMs));
    const scanner: Scanner = {
      scan: async ({ source }) => {
        await source.complete;
        await new Promise((resolve) => setTimeout(resolve, scanMs));
        return clean;
      },
    };
    const stage = createScanStage(scanner, input, () => undefined, timeoutMs);
    return stage.decide({ open: () => Readable.from([]), complete }, "ID1");
  };

  it("counts from the message's end: a slow sender is not a slow scan", async () => {
    expect(await run(300, 20, 150)).toMatchObject({ to: "incoming" });
  });

  it("a scan not done in time after the end is a tempfail", async () => {
    const decision = await run(10, 400, 150);
    expect("refuse" in decision ? decision.refuse : undefined).toMatchObject({ responseCode: 451 });
  });
});
