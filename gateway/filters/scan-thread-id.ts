/**
 * The first thing the verdict's thread does (scan-thread.ts imports this before anything else,
 * since a module's imports run before its body, and the detectors take about a second to load):
 * it writes its kernel thread id where the gateway's thread reads it (thread-scanner.ts), so
 * loopCpu leaves it on every CPU from the start rather than from its next look (loop-cpu.ts).
 */
import { readlinkSync } from "node:fs";
import { workerData } from "node:worker_threads";

/** This thread's id in the kernel (/proc/thread-self links to the process's task/<id>); 0 where there is none. */
function ownOsThreadId(): number {
  try {
    return Number(/(\d+)$/.exec(readlinkSync("/proc/thread-self"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const cell = (workerData as { osThreadIdCell?: Int32Array } | null)?.osThreadIdCell;
if (cell) Atomics.store(cell, 0, ownOsThreadId());
