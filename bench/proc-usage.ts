/**
 * What a system uses of the machine, read from /proc for bench/peers.ts: the CPU and memory of
 * its process tree, the CPU of each of its threads and how long they waited for a CPU, the CPU
 * of everything else the benchmark runs (the load's side), and the whole machine's busy time.
 */
import { readFileSync, readdirSync } from "node:fs";

const CLK_TCK_MS = 10;

/**
 * What a system and the rest of the machine have used so far, from one scan of /proc and one
 * walk over the system's threads; a load mode's figures are the difference of two.
 */
export interface Usage {
  /** CPU (ms) of the system's process tree: the root and every descendant, children that exited included. */
  readonly treeCpuMs: number;
  /**
   * CPU (ms) of the load's side of the machine: everything this benchmark runs besides the
   * system (its own process, which is the Node load client and the polling, smtp-source, the
   * sink, the DNS stub). Per process, as the system's own CPU is counted, so the two add up.
   */
  readonly loadCpuMs: number;
  /** The whole machine's busy time (ms), machineUsage. */
  readonly machineBusyMs: number;
  /**
   * Every thread of the system's tree, by thread id, from its schedstat: time on a CPU (to the
   * nanosecond, where /proc's stat counts ticks), time waiting for one while ready to run, and
   * how often it was put on one. Between two readings the busiest thread shows whether a system
   * is held by one thread (an event loop at a full core) while the machine has cores to spare;
   * a thread woken by another (a reply, a finished file operation, a message from another
   * thread) waits until a CPU takes it (on this VM 70-170 µs a time under load; not the
   * wake-up's own cost, a pipe round trip between two idle processes takes 17 µs).
   */
  readonly threads: ReadonlyMap<number, ThreadUsage>;
}

/** One thread's schedstat, with the name the kernel has for it (`comm`: Node 24 names its threads). */
export interface ThreadUsage extends RunQueueWait {
  readonly name: string;
}

export function usage(systemPid: number): Usage {
  const processes = scanProcesses();
  const parents = parentsOf(processes);
  const system = subtree(processes, systemPid, parents);
  let treeCpuMs = 0;
  for (const stat of system.values()) treeCpuMs += statCpuMs(stat);
  let loadCpuMs = 0;
  for (const [pid, stat] of subtree(processes, process.pid, parents))
    if (!system.has(pid)) loadCpuMs += statCpuMs(stat);
  const threads = new Map<number, ThreadUsage>();
  for (const pid of system.keys()) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const tid of tids) {
      try {
        const schedstat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8");
        const [run = 0, wait = 0, slices = 0] = schedstat.split(" ").map(Number);
        const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
        threads.set(Number(tid), { runMs: run / 1e6, waitMs: wait / 1e6, slices, name });
      } catch {
        // this thread exited meanwhile: the process's others are still read
      }
    }
  }
  return { treeCpuMs, loadCpuMs, machineBusyMs: machineUsage().busyMs, threads };
}

/**
 * Of the threads in a Usage: their time on a CPU, waiting and times put on one added up, and
 * the same for the root's main thread alone (a Node process's event loop), whose thread id is
 * the root's pid.
 */
export function runQueueWait(
  threads: ReadonlyMap<number, RunQueueWait>,
  rootPid: number,
): RunQueueWait & { readonly main: RunQueueWait } {
  let [runMs, waitMs, slices] = [0, 0, 0];
  for (const thread of threads.values()) {
    runMs += thread.runMs;
    waitMs += thread.waitMs;
    slices += thread.slices;
  }
  return { runMs, waitMs, slices, main: threads.get(rootPid) ?? { runMs: 0, waitMs: 0, slices: 0 } };
}

/**
 * Of two readings of a system's threads, the CPU (ms) each kind of thread had between them,
 * most first: the root's main thread (Moat's and Haraka's event loop) as `main`, the others by
 * the kernel's name for them (on Node 24 the verdict's `WorkerThread`, V8's helpers `V8Worker`,
 * libuv's pool `libuv-worker`; Node 20 names every thread `node`), with how many there were.
 * A thread started between the readings counts from zero; one that ended is not counted.
 */
export function cpuByThread(
  before: ReadonlyMap<number, ThreadUsage>,
  after: ReadonlyMap<number, ThreadUsage>,
  rootPid: number,
): { readonly name: string; readonly threads: number; readonly runMs: number }[] {
  const kinds = new Map<string, { threads: number; runMs: number }>();
  for (const [tid, thread] of after) {
    const name = tid === rootPid ? "main" : thread.name;
    const kind = kinds.get(name) ?? { threads: 0, runMs: 0 };
    kind.threads++;
    kind.runMs += thread.runMs - (before.get(tid)?.runMs ?? 0);
    kinds.set(name, kind);
  }
  return [...kinds].map(([name, kind]) => ({ name, ...kind })).sort((a, b) => b.runMs - a.runMs);
}

/**
 * Memory (kB) of a process tree, from /proc/PID/smaps_rollup. PSS (proportional set size): pages
 * shared between processes — Postfix's one smtpd per session — divided among them instead of
 * counted once per process; but also pages shared with processes outside the tree, such as the
 * node binary's, which the bench's own node processes map too. RSS: every page the tree's
 * processes map counted whole, as a container that runs them alone is charged for it (for a
 * tree of one process, Moat's or Haraka's, that is its RSS; for Postfix's, shared pages are
 * counted once per process). Read apart from usage(): smaps_rollup costs more, and takes the
 * process's memory-map lock, which the system needs for its own mappings.
 */
export function treeMemoryKb(rootPid: number): { pss: number; rss: number } {
  const kb = { pss: 0, rss: 0 };
  for (const pid of subtree(scanProcesses(), rootPid).keys()) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
      kb.pss += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
      kb.rss += Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return kb;
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

/** Of threads' schedstat: time on a CPU and waiting for one (ms), and how often they were put on one. */
export interface RunQueueWait {
  readonly runMs: number;
  readonly waitMs: number;
  readonly slices: number;
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

/** Of a scan, each process's parent. */
const parentsOf = (processes: ReadonlyMap<number, string>): Map<number, number> =>
  new Map([...processes].map(([pid, stat]) => [pid, Number(statFields(stat)[1])]));

/** Of a scan, the root and every descendant (`parent`: parentsOf the scan, when already made). */
function subtree(
  processes: ReadonlyMap<number, string>,
  rootPid: number,
  parent: ReadonlyMap<number, number> = parentsOf(processes),
): Map<number, string> {
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
