/**
 * bench/peers.ts's reading of a process's threads (bench/proc-usage.ts): the main thread, whose
 * share of a run says whether the event loop held the rate, counted apart from the others.
 */
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { runQueueWait } from "../../bench/proc-usage";

/** Keeps the calling thread on a CPU for `ms`. */
const spin = (ms: number) => {
  for (const end = performance.now() + ms; performance.now() < end;);
};

describe("the run-queue reading of a process", () => {
  it("counts the main thread's time apart, and every thread's in the total", async () => {
    const before = runQueueWait(process.pid);
    spin(200);
    // Another thread of the same process busy meanwhile: in the total, not the main thread's.
    // It stays (listening) until terminated, so its thread is still there to be read.
    const worker = new Worker(
      [
        "const { parentPort } = require('node:worker_threads');",
        "const end = performance.now() + 300; while (performance.now() < end);",
        "parentPort.on('message', () => {}); parentPort.postMessage('done');",
      ].join("\n"),
      { eval: true },
    );
    await new Promise((resolve) => worker.once("message", resolve));
    const after = runQueueWait(process.pid);
    await worker.terminate();
    const mainRan = after.main.runMs - before.main.runMs;
    expect(mainRan).toBeGreaterThanOrEqual(180);
    expect(mainRan).toBeLessThan(after.runMs - before.runMs - 250); // the worker's 300 ms are not the main thread's
    expect(after.main.slices).toBeGreaterThan(before.main.slices);
    expect(after.slices).toBeGreaterThanOrEqual(after.main.slices);
  });
});
