/**
 * `loopCpu` (gateway/loop-cpu.ts): the gateway's helper threads kept off one CPU for its event
 * loop, where the process can keep two busy, the verdict's thread left on every CPU as the loop
 * is; checked on a real process's threads.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { allowedCpus, keepLoopCpuApart, loopCpuPlan, parseCpuList } from "../../gateway/loop-cpu";
import { createLogger } from "../../gateway/log";
import { ROOT, freePort, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";

describe("loopCpu", () => {
  it("reads the kernel's CPU lists, and names what it cannot read", () => {
    expect(parseCpuList("0-3,8,10-11\n")).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(parseCpuList("5")).toEqual([5]);
    expect(() => parseCpuList("0-x")).toThrow('not a CPU list: "0-x"');
    expect(() => parseCpuList("3-1")).toThrow("not a CPU list");
  });

  it("keeps the other threads off the first CPU only where two can be kept busy, unless told", () => {
    expect(loopCpuPlan("auto", [0, 1], 2)).toEqual({
      apart: true,
      loopCpu: 0,
      others: [1],
      why: "loopCpu is auto; 2 CPUs in its mask, 2 usable",
    });
    // A container with a quota of one CPU on a many-core host: the verdict runs in the loop's thread.
    expect(loopCpuPlan("auto", [0, 1, 2, 3], 1)).toMatchObject({ apart: false });
    expect(loopCpuPlan(true, [0, 1, 2, 3], 1)).toMatchObject({ apart: true, loopCpu: 0, others: [1, 2, 3] });
    expect(loopCpuPlan(true, [2], 1)).toMatchObject({
      apart: false,
      why: "loopCpu is true; 1 CPU in its mask, 1 usable",
    });
    expect(loopCpuPlan(false, [0, 1], 2)).toMatchObject({ apart: false });
  });

  it("says so and runs as before when the threads' CPUs cannot be set, every thread back on every CPU", async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (line) => lines.push(line) });
    const calls: [readonly number[], number, boolean | undefined][] = [];
    const result = await keepLoopCpuApart(true, log, {
      // The first step (every thread to the others) done, the second (the loop back) refused.
      setCpus: (cpus, tid, all) => {
        calls.push([cpus, tid, all]);
        if (calls.length !== 2) return Promise.resolve();
        const refused = Object.assign(new Error("Command failed: taskset -p -c 0,1 1"), {
          stderr: "taskset: failed to set pid 1's affinity: Operation not permitted\n",
        });
        return Promise.reject(refused);
      },
    });
    result.stop();
    expect(result.plan.apart).toBe(false);
    const allowed = allowedCpus();
    if (allowed.length < 2) {
      expect(calls).toEqual([]); // nothing to keep apart, nothing touched
      return;
    }
    expect(calls[2]).toEqual([allowed, process.pid, true]);
    expect(result.plan.why).toContain("Operation not permitted");
    expect(lines.join("\n")).toMatch(/could not be kept off the event loop's CPU.*Operation not permitted/);
  });

  it("keeps every other thread of a running process off the loop's CPU, threads started later too, but the free one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-loop-cpu-"));
    const script = join(dir, "child.mjs");
    // A worker that tells its kernel thread id, as the verdict's thread does (scan-thread.ts).
    const telling = [
      "const { workerData } = require('node:worker_threads');",
      "const id = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());",
      "Atomics.store(workerData.cell, 0, id);",
      "setInterval(() => {}, 1000);",
    ].join(" ");
    writeFileSync(
      script,
      [
        `const { allowedCpus, keepLoopCpuApart } = await import(${JSON.stringify(join(ROOT, "gateway", "loop-cpu.ts"))});`,
        `const { silentLogger } = await import(${JSON.stringify(join(ROOT, "gateway", "log.ts"))});`,
        "const { Worker } = await import('node:worker_threads');",
        `const telling = ${JSON.stringify(telling)};`,
        "const startTelling = async () => {",
        "  const cell = new Int32Array(new SharedArrayBuffer(4));",
        "  const worker = new Worker(telling, { eval: true, workerData: { cell } });",
        "  while (Atomics.load(cell, 0) === 0) await new Promise((resolve) => setTimeout(resolve, 5));",
        "  return { worker, tid: Atomics.load(cell, 0) };",
        "};",
        // The free thread running before the start, as the verdict's usually is...
        "let free = await startTelling();",
        "const result = await keepLoopCpuApart(true, silentLogger, { everyMs: 50, free: () => free.tid });",
        "const firstFree = { tid: free.tid, cpus: allowedCpus('self', free.tid) };",
        // ...and started again later (a thread that died), beside a thread that is not free.
        "await free.worker.terminate();",
        "free = await startTelling();",
        "const other = new Worker('setInterval(() => {}, 1000)', { eval: true });",
        "await new Promise((resolve) => other.once('online', resolve));",
        "await new Promise((resolve) => setTimeout(resolve, 500));",
        "console.log(JSON.stringify({ plan: result.plan, firstFree, free: free.tid }));",
        "process.stdin.on('end', () => process.exit(0)).resume();",
      ].join("\n"),
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "inherit"],
    });
    try {
      const [output] = (await once(child.stdout, "data")) as [Buffer];
      const { plan, firstFree, free } = JSON.parse(output.toString()) as {
        plan: ReturnType<typeof loopCpuPlan>;
        firstFree: { tid: number; cpus: number[] };
        free: number;
      };
      const pid = child.pid as number;
      const threads = readdirSync(`/proc/${pid}/task`).map(Number);
      const all = allowedCpus(pid, pid);
      expect(threads.length).toBeGreaterThan(5); // V8's helpers, libuv's, the workers'
      expect(threads).toContain(free);
      if (all.length < 2) {
        // One CPU: nothing to keep apart, and nothing was changed.
        expect(plan.apart).toBe(false);
        for (const tid of threads) expect(allowedCpus(pid, tid)).toEqual(all);
        return;
      }
      expect(plan).toMatchObject({ apart: true, loopCpu: all[0], others: all.slice(1) });
      expect(firstFree.cpus).toEqual(all); // the free thread that ran at the start
      expect(allowedCpus(pid, free)).toEqual(all); // and the one started since
      const kept = threads.filter((t) => t !== pid && t !== free);
      for (const tid of kept) expect(allowedCpus(pid, tid)).toEqual(all.slice(1));
      expect(all).toEqual(allowedCpus()); // the loop itself keeps every CPU
    } finally {
      child.stdin.end();
      await once(child, "exit");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`moat serve` keeps its helper threads off the loop's CPU once it listens, the verdict's thread on any, and says so", async () => {
    const { file } = writeTestConfig({
      smartHostPort: await freePort(),
      edit: (d) => ({ ...d, loopCpu: true, filters: { ...d.filters, scanThread: true } }),
    });
    const gateway = await startGatewayProcess(["--config", file], { MOAT_LOG_LEVEL: "info" });
    try {
      const pid = gateway.child.pid as number;
      const all = allowedCpus(pid, pid);
      if (all.length < 2) {
        expect(gateway.stderr()).toContain("the gateway's threads run on any CPU");
        return;
      }
      expect(gateway.stderr()).toContain(`the gateway's helper threads are kept off CPU ${all[0]}, for its event loop`);
      // The verdict's thread tells its id as it starts; at the latest the next look (5 s) finds it.
      const freed = /the verdict's thread runs on any CPU, as the event loop does.*thread=(\d+)/;
      const deadline = Date.now() + 10_000;
      while (!freed.test(gateway.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const verdict = Number(freed.exec(gateway.stderr())?.[1]);
      expect(allowedCpus(pid, verdict)).toEqual(all);
      const helpers = readdirSync(`/proc/${pid}/task`)
        .map(Number)
        .filter((tid) => tid !== pid && tid !== verdict);
      expect(helpers.length).toBeGreaterThan(5); // libuv's pool, V8's helpers, the checkpointer
      for (const tid of helpers) expect(allowedCpus(pid, tid)).toEqual(all.slice(1));
    } finally {
      await gateway.stop();
    }
  });
});
