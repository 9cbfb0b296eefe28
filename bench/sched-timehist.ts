/**
 * What the machine's CPUs ran during the latency tail's episodes (latency-tail.ts), from the
 * kernel's record of every context switch: `perf sched record -a -k CLOCK_MONOTONIC`, read back
 * with `perf sched timehist`. Each line of timehist is a task leaving a CPU: when (s, on the
 * clock the episodes use), which CPU, the task, how long it had waited to be put on a CPU once
 * ready to run (`sch delay`) and how long it ran. A bench aid for bench/profile-gateway.ts
 * `--sched` (needs root and Debian's linux-perf).
 */
import { execFileSync, spawn } from "node:child_process";
import { cpus } from "node:os";
import type { Episode } from "./latency-tail";

export interface Slice {
  /** When the task left the CPU (ms, CLOCK_MONOTONIC). */
  readonly end: number;
  readonly cpu: number;
  /** The task's name (its comm, as the kernel knows it: a thread's own name). */
  readonly task: string;
  readonly tid: number;
  /** 0 for the idle task. */
  readonly pid: number;
  /** ms it had waited for a CPU while ready to run, before this slice. */
  readonly schedDelay: number;
  /** ms it ran. */
  readonly run: number;
  /**
   * The state it left the CPU in (timehist `--state`): S asleep (waiting for an event: epoll, a
   * lock), D in uninterruptible sleep (the disk, a page fault's read), R preempted, I idle.
   */
  readonly state?: string;
}

const LINE =
  /^\s*(\d+\.\d+)\s+\[(\d+)\]\s+(.*?)(?:\[(\d+)(?:\/(\d+))?\])?\s+(\d+\.\d+)\s+(\d+\.\d+)\s+(\d+\.\d+)(?:\s+([A-Z]+))?\s*$/;

/** `perf sched timehist`'s lines (its header and anything else skipped). */
export function parseTimehist(text: string): Slice[] {
  const slices: Slice[] = [];
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, time, cpu, task = "", tid, pid, , schedDelay, run, state] = m;
    const idle = task.trim() === "<idle>";
    slices.push({
      end: Number(time) * 1000,
      cpu: Number(cpu),
      task: task.trim(),
      tid: idle ? 0 : Number(tid),
      pid: idle ? 0 : Number(pid ?? tid),
      schedDelay: Number(schedDelay),
      run: Number(run),
      ...(state ? { state } : {}),
    });
  }
  return slices;
}

/** How a slice's task is named in the summary (by its process and thread, or its own name). */
export type Namer = (slice: Slice) => string;

export interface EpisodeCpu {
  readonly episode: Episode;
  /** ms of CPU in the episode, by name, most first (idle included: "<idle>"). */
  readonly byTask: readonly (readonly [string, number])[];
  /**
   * Where the thread `watched` was in the episode when not on a CPU (ms): waiting for one while
   * ready to run ("R"), or asleep in the state it left its last CPU in ("S", "D").
   */
  readonly watchedOff: Readonly<Record<string, number>>;
}

/**
 * The CPU time each task had within each episode (a slice's run clipped to the episode), and where
 * the `watched` thread (the gateway's event loop) was there when off its CPU.
 */
export function cpuDuring(
  slices: readonly Slice[],
  found: readonly Episode[],
  name: Namer,
  watched: number,
): EpisodeCpu[] {
  return found.map((episode) => {
    const within = (from: number, to: number) => Math.min(to, episode.end) - Math.max(from, episode.start);
    const byTask = new Map<string, number>();
    const watchedOff: Record<string, number> = {};
    const off = (state: string, from: number, to: number) => {
      if (within(from, to) > 0) watchedOff[state] = (watchedOff[state] ?? 0) + within(from, to);
    };
    let last: Slice | undefined; // the watched thread's slice before this one
    for (const slice of slices) {
      const start = slice.end - slice.run;
      const overlap = within(start, slice.end);
      if (overlap > 0) {
        const task = name(slice);
        byTask.set(task, (byTask.get(task) ?? 0) + overlap);
      }
      if (slice.tid !== watched) continue;
      if (last) {
        const ready = start - slice.schedDelay; // woken (or preempted: then ready from the last slice's end)
        off("R", Math.max(last.end, ready), start);
        if (ready > last.end) off(last.state ?? "S", last.end, ready);
      }
      last = slice;
    }
    return { episode, byTask: [...byTask].sort((a, b) => b[1] - a[1]), watchedOff };
  });
}

/** Starts `perf sched record` of every CPU into `file`; stop() ends it and reads the record back. */
export function recordScheduling(file: string): { stop(): Promise<Slice[]>; cancel(): void } {
  const perf = spawn("perf", ["sched", "record", "-a", "-k", "CLOCK_MONOTONIC", "-o", file], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let errors = "";
  perf.stderr.on("data", (d: Buffer) => (errors += d.toString()));
  const exited = new Promise<string>((resolve, reject) => {
    perf.on("error", (error) => reject(new Error(`perf sched record: ${error.message} (Debian's linux-perf)`)));
    perf.on("exit", (code, signal) => resolve(signal ?? String(code)));
  });
  exited.catch(() => undefined); // a perf that did not start is reported by stop(), not as an unhandled rejection
  return {
    cancel: () => perf.exitCode === null && perf.signalCode === null && perf.kill("SIGINT"),
    async stop() {
      perf.kill("SIGINT");
      const how = await exited; // perf writes its record on SIGINT, then ends by it
      if (how !== "0" && how !== "SIGINT") throw new Error(`perf sched record ended by ${how}: ${errors.trim()}`);
      const text = execFileSync("perf", ["sched", "timehist", "--state", "-i", file], {
        encoding: "utf8",
        maxBuffer: 1 << 30,
        stdio: ["ignore", "pipe", "ignore"],
      });
      return parseTimehist(text);
    },
  };
}

/**
 * Prints, for each episode, the CPU each task had (the gateway's event loop and its other threads
 * by name, the bench's own process, everything else by name) and where the event loop was when
 * off its CPU (R: ready, waiting for one; S: asleep, waiting for an event; D: for the disk).
 * An episode of no messages is printed as the whole run.
 */
export function printCpuDuring(slices: readonly Slice[], found: readonly Episode[], gatewayPid: number): void {
  const name: Namer = (s) =>
    s.pid === gatewayPid
      ? `gateway ${s.tid === gatewayPid ? "event loop" : `${s.task}[${s.tid}]`}`
      : s.pid === process.pid
        ? `load client ${s.tid === process.pid ? "" : s.task}`.trimEnd()
        : s.task;
  for (const { episode, byTask, watchedOff } of cpuDuring(slices, found, name, gatewayPid)) {
    const ms = episode.end - episode.start;
    const tasks = byTask
      .slice(0, 8)
      .map(([task, cpu]) => `${task} ${cpu.toFixed(1)}`)
      .join(", ");
    console.log(
      `  ${episode.messages === 0 ? "the whole run" : `${episode.messages} slow`} in ${ms.toFixed(0)} ms: CPU (ms of ${(cpus().length * ms).toFixed(0)}) ${tasks}; the loop off its CPU (ms) ${Object.entries(
        watchedOff,
      )
        .map(([state, off]) => `${state} ${off.toFixed(1)}`)
        .join(", ")}`,
    );
  }
}
