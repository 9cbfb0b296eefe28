/**
 * A large message's buffers are freed while it streams (young-collection.ts): the spool's
 * written chunks, the verdict's reads of the spool file and delivery's reads of the queued file
 * do not pile up to V8's own 32 MB before anything collects them, and the collection itself is
 * had without --expose-gc and leaves no `gc` behind.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { runInNewContext } from "node:vm";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import { arrivingMessage } from "../../gateway/queue/arriving";
import { createSpool } from "../../gateway/queue/spool";
import {
  COLLECT_EVERY_BYTES,
  v8Collection,
  v8MinorCollection,
  youngCollector,
} from "../../gateway/queue/young-collection";

const MB = 1024 * 1024;
/** Well past V8's own trigger (32 MB of buffers), so that without our collections they would pile up to it. */
const MESSAGE_BYTES = 48 * MB;
/**
 * Well below V8's 32 MB, above what a collection every COLLECT_EVERY_BYTES leaves (5–10 MB
 * measured: the bytes since the last collection, their copies, what is in flight, and the
 * freeing V8 does beside the script, which the count can lag behind).
 */
const BOUND_BYTES = 20 * MB;

/** The most memory this thread's buffers took while `run` ran (sampled by `sample`, which `run` calls). */
async function peakArrayBuffers(run: (sample: () => void) => Promise<void>): Promise<number> {
  // What earlier steps left is not counted: a full collection, and a second one, which first
  // finishes the first's freeing of buffers (V8 does that beside the script, so the count lags).
  const collect = v8Collection();
  collect?.();
  collect?.();
  const before = process.memoryUsage().arrayBuffers;
  let peak = 0;
  await run(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
  });
  return peak;
}

const envelope = {
  mailFrom: "a@outside.example",
  rcptTo: ["jo@acme.com"],
  receivedAt: new Date().toISOString(),
  client: { ip: "192.0.2.1", helo: "mx.outside.example", tls: false },
};

const made: string[] = [];
/** A directory of its own, removed after the tests (the messages here are 48 MB). */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-young-"));
  made.push(dir);
  return dir;
}
async function freshSpool() {
  const spool = createSpool(scratch());
  await spool.recover();
  return spool;
}
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe("collecting a large message's buffers as it streams", () => {
  it("collects once every so many bytes, and counts on without a collection to make", () => {
    let collected = 0;
    const collector = youngCollector(100, () => collected++);
    collector.handled(60);
    expect(collected).toBe(0);
    collector.handled(60);
    expect([collected, collector.collections]).toEqual([1, 1]);
    collector.handled(99);
    expect(collected).toBe(1);
    collector.handled(1);
    expect([collected, collector.collections]).toEqual([2, 2]);

    // Where the collection cannot be had, counting goes on and nothing fails.
    const without = youngCollector(10, undefined);
    for (let i = 0; i < 5; i++) without.handled(10);
    expect(without.collections).toBe(0);
  });

  it("gets V8's young-generation collection without --expose-gc, and leaves no gc() to other code", () => {
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    const collect = v8MinorCollection();
    expect(collect).toBeTypeOf("function");
    collect?.();
    expect(runInNewContext("typeof gc")).toBe("undefined");
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });

  it("has its own collection in a worker thread (the verdict's own thread, filters.scanThread)", async () => {
    const module = join(__dirname, "../../gateway/queue/young-collection.ts");
    // As scan-thread.cjs starts the verdict's thread: tsx registered, no loader flags inherited.
    const thread = new Worker(
      `require("tsx/cjs/api").register();
       const { parentPort } = require("node:worker_threads");
       const { runInNewContext } = require("node:vm");
       const { COLLECT_EVERY_BYTES, largeMessageBytes } = require(${JSON.stringify(module)});
       largeMessageBytes.handled(COLLECT_EVERY_BYTES);
       parentPort.postMessage({ collections: largeMessageBytes.collections, gc: runInNewContext("typeof gc") });`,
      { eval: true, execArgv: [] },
    );
    try {
      const answer = await new Promise((resolve, reject) => {
        thread.once("message", resolve);
        thread.once("error", reject);
      });
      expect(answer).toEqual({ collections: 1, gc: "undefined" });
    } finally {
      await thread.terminate();
    }
  });

  it("frees the socket's chunks as the spool writes them, not at V8's 32 MB", async () => {
    const spool = await freshSpool();
    const chunkBytes = 64 * 1024;
    const peak = await peakArrayBuffers(async (sample) => {
      // Each chunk fresh, as a socket's reads are; garbage once written.
      async function* socket() {
        for (let sent = 0; sent < MESSAGE_BYTES; sent += chunkBytes) {
          sample();
          yield Buffer.alloc(chunkBytes, 0x41);
        }
      }
      const { bytes } = await spool.accept(envelope, Buffer.alloc(0), Readable.from(socket()), () => false);
      expect(bytes).toBe(MESSAGE_BYTES);
    });
    expect(peak).toBeGreaterThan(COLLECT_EVERY_BYTES / 2); // the measure sees the buffers at all
    expect(peak).toBeLessThan(BOUND_BYTES);
  });

  it("frees the verdict's reads of the spool file as it reads on, not at V8's 32 MB", async () => {
    const path = join(scratch(), "message");
    writeFileSync(path, Buffer.alloc(MESSAGE_BYTES, 0x42));
    const arriving = arrivingMessage(path, 0, 256 * 1024);
    arriving.appendedInFile(MESSAGE_BYTES);
    arriving.finish();
    let read = 0;
    const peak = await peakArrayBuffers(async (sample) => {
      for await (const chunk of arriving.source.open()) {
        // As mailparser's first stage does with every chunk: a copy, garbage soon after.
        read += Buffer.concat([Buffer.alloc(0), chunk as Buffer]).length;
        sample();
      }
    });
    expect(read).toBe(MESSAGE_BYTES);
    expect(peak).toBeGreaterThan(COLLECT_EVERY_BYTES / 2);
    expect(peak).toBeLessThan(BOUND_BYTES);
  });

  it("frees a queued message's reads as delivery reads it back, not at V8's 32 MB", async () => {
    const spool = await freshSpool();
    const { id } = await spool.accept(
      envelope,
      Buffer.alloc(0),
      Readable.from([Buffer.alloc(MESSAGE_BYTES, 0x43)]),
      () => false,
    );
    const queued = await spool.read("incoming", id);
    let read = 0;
    const peak = await peakArrayBuffers(async (sample) => {
      for await (const chunk of queued.openMessage()) {
        // As the SMTP client's dot-stuffing does with every chunk: a copy, garbage soon after.
        read += Buffer.concat([Buffer.alloc(0), chunk as Buffer]).length;
        sample();
      }
    });
    expect(read).toBe(MESSAGE_BYTES);
    expect(peak).toBeGreaterThan(COLLECT_EVERY_BYTES / 2);
    expect(peak).toBeLessThan(BOUND_BYTES);
  });
});
