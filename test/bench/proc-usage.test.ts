/**
 * bench/peers.ts's reading of what a system uses (bench/proc-usage.ts): its CPU apart from the
 * load's side, and its main thread, whose share of a run says whether the event loop held the
 * rate, apart from its other threads.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { cpuByThread, runQueueWait, usage } from "../../bench/proc-usage";

/**
 * Keeps the calling thread on a CPU until the process has used `ms` more of CPU time: by the
 * clock, a spin would use less CPU than that while the machine is busy (as under CI).
 */
function spin(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if (used.user + used.system >= ms * 1000) return;
  }
}
/** The same, for the code of another thread or process. */
const SPIN_SOURCE = spin.toString();

describe("the run-queue reading of a process", () => {
  it("counts the main thread's time apart, and every thread's in the total", async () => {
    const beforeThreads = usage(process.pid).threads;
    const before = runQueueWait(beforeThreads, process.pid);
    spin(200);
    // Another thread of the same process busy meanwhile: in the total, not the main thread's.
    // It stays (listening) until terminated, so its thread is still there to be read.
    const worker = new Worker(
      [
        "const { parentPort } = require('node:worker_threads');",
        `${SPIN_SOURCE}; spin(300);`,
        "parentPort.on('message', () => {}); parentPort.postMessage('done');",
      ].join("\n"),
      { eval: true },
    );
    await new Promise((resolve) => worker.once("message", resolve));
    const afterThreads = usage(process.pid).threads;
    const after = runQueueWait(afterThreads, process.pid);
    await worker.terminate();
    const mainRan = after.main.runMs - before.main.runMs;
    expect(mainRan).toBeGreaterThanOrEqual(180);
    expect(mainRan).toBeLessThan(after.runMs - before.runMs - 250); // the worker's 300 ms are not the main thread's
    expect(after.main.slices).toBeGreaterThan(before.main.slices);
    expect(after.slices).toBeGreaterThanOrEqual(after.main.slices);
    // By kind of thread: the main one alone as "main", the worker (started after the first
    // reading) counted from zero under the kernel's name for it, and nothing counted twice.
    const kinds = cpuByThread(beforeThreads, afterThreads, process.pid);
    const main = kinds.find((k) => k.name === "main");
    expect(main).toMatchObject({ threads: 1 });
    expect(main?.runMs).toBeCloseTo(mainRan, 6);
    const workerTid = [...afterThreads.keys()].find((tid) => !beforeThreads.has(tid) && tid !== process.pid);
    const workerKind = kinds.find((k) => k.name === afterThreads.get(workerTid ?? -1)?.name);
    expect(workerKind?.runMs).toBeGreaterThanOrEqual(250);
    expect(kinds.reduce((sum, k) => sum + k.runMs, 0)).toBeCloseTo(after.runMs - before.runMs, 6);
    expect(kinds.map((k) => k.runMs)).toEqual([...kinds.map((k) => k.runMs)].sort((a, b) => b - a));
  });

  it("counts a system's CPU in its tree and this process's on the load's side, never both", async () => {
    // The system: a child that spins 300 ms when told, then waits for its input to end.
    const child = spawn(
      process.execPath,
      [
        "-e",
        `${SPIN_SOURCE}; process.stdin.once('data', () => { spin(300); console.log('done'); process.stdin.resume(); })`,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 300)); // node started
      const before = usage(child.pid as number);
      child.stdin.write("go\n");
      spin(200); // this process, the load's side, busy meanwhile
      await once(child.stdout, "data");
      const after = usage(child.pid as number);
      expect(after.treeCpuMs - before.treeCpuMs).toBeGreaterThanOrEqual(250);
      const load = after.loadCpuMs - before.loadCpuMs;
      expect(load).toBeGreaterThanOrEqual(150);
      expect(load).toBeLessThan(400); // the child's 300 ms are not the load's
      const ran = (tid: number) => (after.threads.get(tid)?.runMs ?? 0) - (before.threads.get(tid)?.runMs ?? 0);
      expect(ran(child.pid as number)).toBeGreaterThanOrEqual(250); // its main thread, to the nanosecond
      expect(after.threads.has(process.pid)).toBe(false);
      expect(after.machineBusyMs - before.machineBusyMs).toBeGreaterThanOrEqual(400);
    } finally {
      child.stdin.end();
      await once(child, "exit");
    }
  });
});
