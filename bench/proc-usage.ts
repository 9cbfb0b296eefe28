/**
 * What a system uses of the machine, read from /proc for bench/peers.ts: the CPU and memory of
 * its process tree, the CPU of each of its threads and how long they waited for a CPU, the CPU
 * of everything else the benchmark runs (the load's side), and the whole machine's busy time.
 */
import { readFileSync, readdirSync } from "node:fs";

const CLK_TCK_MS = 10;

/**
 * CPU (ms) and memory (kB) of a process tree: the root and every descendant. Memory is PSS
 * (proportional set size, /proc/PID/smaps_rollup): pages shared between processes — Postfix's
 * one smtpd per session — are divided among them instead of counted once per process.
 */
export function treeUsage(rootPid: number): { cpuMs: number; rssKb: number } {
  let cpuMs = 0;
  let rssKb = 0;
  for (const [pid, stat] of processTree(rootPid)) {
    cpuMs += statCpuMs(stat);
    try {
      rssKb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { cpuMs, rssKb };
}

/**
 * A process's CPU (ms) from its /proc/PID/stat line: utime + stime, and cutime + cstime, so
 * children that exited (Postfix's smtpd) still count.
 */
function statCpuMs(stat: string): number {
  const fields = statFields(stat);
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * CLK_TCK_MS;
}

/** A /proc stat line's fields after the command name (which may hold spaces): state, ppid, ... */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * CPU (ms) of the load's side of the machine: everything this benchmark runs besides the system
 * measured (its own process, which is the Node load client and the polling, smtp-source, the
 * sink, the DNS stub). Per process, as the system's own CPU is counted, so the two add up.
 */
export function loadCpuMs(systemPid: number): number {
  const processes = scanProcesses();
  const system = subtree(processes, systemPid);
  let cpuMs = 0;
  for (const [pid, stat] of subtree(processes, process.pid)) if (!system.has(pid)) cpuMs += statCpuMs(stat);
  return cpuMs;
}

/** Each thread of a process tree with the text of its /proc/PID/task/TID/`file`. */
function threadFiles(rootPid: number, file: "stat" | "schedstat"): [tid: number, text: string][] {
  const found: [number, string][] = [];
  for (const pid of processTree(rootPid).keys()) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`))
        found.push([Number(tid), readFileSync(`/proc/${pid}/task/${tid}/${file}`, "utf8")]);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/**
 * CPU (ms) of every thread in a process tree, by thread id. Between two readings the busiest
 * thread shows whether a system is held by one thread (an event loop at a full core) while
 * the machine still has cores to spare.
 */
export function threadCpu(rootPid: number): Map<number, number> {
  return new Map(
    threadFiles(rootPid, "stat").map(([tid, stat]) => {
      const fields = statFields(stat);
      return [tid, (Number(fields[11]) + Number(fields[12])) * CLK_TCK_MS];
    }),
  );
}

/**
 * How long the threads of a process tree have waited for a CPU while ready to run (ms), and how
 * often they were put on one: /proc/PID/task/TID/schedstat's second and third fields; and the
 * same with its time on a CPU for the root's main thread alone (a Node process's event loop). A thread
 * woken by another (a reply, a finished file operation, a message from another thread) waits
 * there until a CPU takes it (on this VM 70-170 µs a time under load; not the wake-up's own cost,
 * a pipe round trip between two idle processes takes 17 µs).
 */
export function runQueueWait(rootPid: number): RunQueueWait & { readonly main: RunQueueWait } {
  let runMs = 0;
  let waitMs = 0;
  let slices = 0;
  let main: RunQueueWait = { runMs: 0, waitMs: 0, slices: 0 };
  for (const [tid, schedstat] of threadFiles(rootPid, "schedstat")) {
    const [run = 0, wait = 0, runs = 0] = schedstat.split(" ").map(Number);
    if (tid === rootPid) main = { runMs: run / 1e6, waitMs: wait / 1e6, slices: runs };
    runMs += run / 1e6;
    waitMs += wait / 1e6;
    slices += runs;
  }
  return { runMs, waitMs, slices, main };
}

/** Of threads' schedstat: time on a CPU and waiting for one (ms), and how often they were put on one. */
export interface RunQueueWait {
  readonly runMs: number;
  readonly waitMs: number;
  readonly slices: number;
}

/** The root and every descendant, each with its /proc/PID/stat line. */
function processTree(rootPid: number): Map<number, string> {
  return subtree(scanProcesses(), rootPid);
}

/** Every process on the machine, by pid, with its /proc/PID/stat line. */
function scanProcesses(): Map<number, string> {
  const stats = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      stats.set(Number(entry), readFileSync(`/proc/${entry}/stat`, "utf8"));
    } catch {
      // exited meanwhile
    }
  }
  return stats;
}

/** Of a scan, the root and every descendant. */
function subtree(processes: ReadonlyMap<number, string>, rootPid: number): Map<number, string> {
  const parent = new Map([...processes].map(([pid, stat]) => [pid, Number(statFields(stat)[1])]));
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = parent.get(p) ?? 0, hops++) if (p === rootPid) return true;
    return false;
  };
  return new Map([...processes].filter(([pid]) => inTree(pid)));
}

/**
 * The whole machine's busy CPU time (ms, all cores: user, nice, system, irq, softirq, steal)
 * from /proc/stat: over a run, whether the machine was the limit (busy near cores x wall
 * time). Like the processes' times in /proc, counted by the scheduler tick.
 */
export function machineUsage(): { busyMs: number } {
  const cpuLine = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu  user nice system idle iowait irq softirq steal ...
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpuLine
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busyMs: busy * CLK_TCK_MS };
}
