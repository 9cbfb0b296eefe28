/**
 * `loopCpu`: keeps the gateway's helper threads (libuv's file pool, V8's helpers, the tracker's
 * checkpointer) off one CPU, which the event loop then never has to share with them. The loop
 * itself may still run on any CPU (it is not pinned: where that CPU is busy with another
 * process, it goes elsewhere), and so may the verdict's own thread (filters.scanThread): kept
 * to the helpers' CPUs, it queued behind them and the pool's many short wake-ups, and the
 * verdict's p99 at half load doubled. Measured on a 2-vCPU VM beside its load generator
 * (README, Benchmarks): the loop waited for a CPU less, its threads spent less CPU a message, and
 * the rates rose. Threads started later inherit their creator's CPUs, so new threads are looked
 * for every few seconds and set as they come.
 *
 * Linux only, through util-linux's `taskset` (Node has no call for a thread's CPUs; setting a
 * process's own threads needs no privilege). Where it cannot be done, the gateway says so once
 * and runs as before.
 */
import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { promisify } from "node:util";
import type { GatewayConfig } from "./config";
import type { Logger } from "./log";
import { usableCpus } from "./usable-cpus";

/** true: whenever the process may run on two CPUs or more; "auto": when it can keep two busy (a cgroup quota counts); false: never. */
export type LoopCpuSetting = GatewayConfig["loopCpu"];

/** The CPUs as the kernel writes a list of them ("0-3,8,10-11"), in order. */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw new Error(`not a CPU list: ${JSON.stringify(text.trim())}`);
    const [first, last] = [Number(match[1]), Number(match[2] ?? match[1])];
    if (last < first) throw new Error(`not a CPU list: ${JSON.stringify(text.trim())}`);
    for (let cpu = first; cpu <= last; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** The CPUs a process (its main thread), or one thread of it, may run on: its affinity mask, from /proc. */
export function allowedCpus(pid: number | "self" = "self", tid?: number): number[] {
  const file = tid === undefined ? `/proc/${pid}/status` : `/proc/${pid}/task/${tid}/status`;
  const list = /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync(file, "utf8"))?.[1];
  if (list === undefined) throw new Error(`${file} has no Cpus_allowed_list`);
  return parseCpuList(list);
}

export type LoopCpuPlan =
  | { readonly apart: true; readonly loopCpu: number; readonly others: readonly number[]; readonly why: string }
  | { readonly apart: false; readonly why: string };

/** Whether the other threads are kept off a CPU, which, and why (logged at start-up). */
export function loopCpuPlan(setting: LoopCpuSetting, allowed: readonly number[], usable: number): LoopCpuPlan {
  const cpus = `${allowed.length} CPU${allowed.length === 1 ? "" : "s"} in its mask, ${usable} usable`;
  const on = setting === true ? allowed.length >= 2 : setting === "auto" && usable >= 2 && allowed.length >= 2;
  const why = `loopCpu is ${String(setting)}; ${cpus}`;
  const [loopCpu] = allowed;
  if (!on || loopCpu === undefined) return { apart: false, why };
  return { apart: true, loopCpu, others: allowed.slice(1), why };
}

/** Sets one thread's CPUs, or with `all`, every thread of the process. */
export type SetCpus = (cpus: readonly number[], tid: number, all?: boolean) => Promise<void>;

const run = promisify(execFile);
const taskset: SetCpus = async (cpus, tid, all = false) => {
  await run("taskset", [...(all ? ["-a"] : []), "-p", "-c", cpus.join(","), String(tid)], { timeout: 10_000 });
};

const threadIds = (): number[] => readdirSync("/proc/self/task").map(Number);

/** Why a step failed, in one line: taskset's own complaint where it made one. */
const reason = (error: unknown): string =>
  ((error as { stderr?: string }).stderr?.trim() || (error as Error).message).split("\n")[0] ?? "";

/**
 * Applies `setting` to this process: every thread but the main one (whose thread id is the
 * process id) and the `free` one kept to the other CPUs, now and, every `everyMs`, each thread
 * started since. `free` names a thread left on every CPU, as the loop is (the verdict's; it may
 * start, or start again, later: asked at every look).
 */
export async function keepLoopCpuApart(
  setting: LoopCpuSetting,
  log: Logger,
  options: { everyMs?: number; setCpus?: SetCpus; usable?: () => number; free?: () => number | undefined } = {},
): Promise<{ readonly plan: LoopCpuPlan; stop(): void }> {
  const { everyMs = 5000, setCpus = taskset, usable = usableCpus, free = () => undefined } = options;
  let plan: LoopCpuPlan;
  try {
    plan =
      process.platform === "linux"
        ? loopCpuPlan(setting, allowedCpus(), usable())
        : { apart: false, why: `loopCpu: not Linux (${process.platform})` };
  } catch (error) {
    plan = { apart: false, why: `loopCpu: ${reason(error)}` };
  }
  if (!plan.apart) {
    log.info("the gateway's threads run on any CPU", { why: plan.why });
    return { plan, stop: () => undefined };
  }
  const { loopCpu, others } = plan;
  const all = [loopCpu, ...others].sort((a, b) => a - b);
  const first = threadIds(); // before the first step: a thread started during it is found by the first look
  try {
    // Every thread to the others, then the main thread back to every CPU it had.
    await setCpus(others, process.pid, true);
    await setCpus(all, process.pid);
  } catch (error) {
    // Every thread back to every CPU, the loop's too, should the second step have failed.
    await setCpus(all, process.pid, true).catch(() => undefined);
    log.warn("the gateway's other threads could not be kept off the event loop's CPU; they run anywhere", {
      error: reason(error),
    });
    return { plan: { apart: false, why: `${plan.why}; ${reason(error)}` }, stop: () => undefined };
  }
  log.info(`the gateway's helper threads are kept off CPU ${loopCpu}, for its event loop`, { why: plan.why });
  /** Where each thread was put (the first step put every thread there was on the others). */
  const placed = new Map<number, "all" | "others">(first.map((tid) => [tid, "others"]));
  placed.set(process.pid, "all");
  /** Each thread not where it belongs (a new one, or the free one kept with the others) set there. */
  const look = async () => {
    const now = threadIds();
    // Forget threads that ended: the kernel may give their ids to new ones.
    for (const tid of placed.keys()) if (!now.includes(tid)) placed.delete(tid);
    const kept = free();
    const home = (tid: number) => (tid === kept || tid === process.pid ? "all" : "others");
    await Promise.all(
      now
        .filter((tid) => placed.get(tid) !== home(tid))
        .map(async (tid) => {
          const where = home(tid);
          placed.set(tid, where); // also when it fails: a thread that ended cannot be set
          try {
            await setCpus(where === "all" ? all : others, tid);
            if (where === "all")
              log.info("the verdict's thread runs on any CPU, as the event loop does", { thread: tid });
          } catch {
            // ended meanwhile
          }
        }),
    );
  };
  await look();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void look().finally(() => (busy = false));
  }, everyMs);
  timer.unref();
  return { plan, stop: () => clearInterval(timer) };
}
