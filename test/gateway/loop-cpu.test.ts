/**
 * `loopCpu` (gateway/loop-cpu.ts): the gateway's other threads kept off one CPU for its event
 * loop, where the process can keep two busy; checked on a real process's threads.
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

  it("keeps every other thread of a running process off the loop's CPU, threads started later too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-loop-cpu-"));
    const script = join(dir, "child.mjs");
    writeFileSync(
      script,
      [
        `const { keepLoopCpuApart } = await import(${JSON.stringify(join(ROOT, "gateway", "loop-cpu.ts"))});`,
        `const { silentLogger } = await import(${JSON.stringify(join(ROOT, "gateway", "log.ts"))});`,
        "const { Worker } = await import('node:worker_threads');",
        "const result = await keepLoopCpuApart(true, silentLogger, { everyMs: 50 });",
        // A thread started after: it inherits the main thread's CPUs, every one of them.
        "const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });",
        "await new Promise((resolve) => worker.once('online', resolve));",
        "await new Promise((resolve) => setTimeout(resolve, 500));",
        "console.log(JSON.stringify(result.plan));",
        "process.stdin.on('end', () => process.exit(0)).resume();",
      ].join("\n"),
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: ROOT,
      stdio: ["pipe", "pipe", "inherit"],
    });
    try {
      const [output] = (await once(child.stdout, "data")) as [Buffer];
      const plan = JSON.parse(output.toString()) as ReturnType<typeof loopCpuPlan>;
      const pid = child.pid as number;
      const threads = readdirSync(`/proc/${pid}/task`).map(Number);
      const all = allowedCpus(pid, pid);
      expect(threads.length).toBeGreaterThan(5); // V8's helpers, libuv's, the worker's
      if (all.length < 2) {
        // One CPU: nothing to keep apart, and nothing was changed.
        expect(plan.apart).toBe(false);
        for (const tid of threads) expect(allowedCpus(pid, tid)).toEqual(all);
        return;
      }
      expect(plan).toMatchObject({ apart: true, loopCpu: all[0], others: all.slice(1) });
      for (const tid of threads.filter((t) => t !== pid)) expect(allowedCpus(pid, tid)).toEqual(all.slice(1));
      expect(all).toEqual(allowedCpus()); // the loop itself keeps every CPU
    } finally {
      child.stdin.end();
      await once(child, "exit");
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("`moat serve` keeps its other threads off the loop's CPU once it listens, and says so", async () => {
    const { file } = writeTestConfig({ smartHostPort: await freePort(), edit: (d) => ({ ...d, loopCpu: true }) });
    const gateway = await startGatewayProcess(["--config", file], { MOAT_LOG_LEVEL: "info" });
    try {
      const pid = gateway.child.pid as number;
      const all = allowedCpus(pid, pid);
      if (all.length < 2) {
        expect(gateway.stderr()).toContain("the gateway's threads run on any CPU");
        return;
      }
      expect(gateway.stderr()).toContain(`the gateway's other threads are kept off CPU ${all[0]}, for its event loop`);
      const others = readdirSync(`/proc/${pid}/task`)
        .map(Number)
        .filter((tid) => tid !== pid);
      expect(others.length).toBeGreaterThan(5); // the verdict's thread, libuv's pool, V8's helpers
      for (const tid of others) expect(allowedCpus(pid, tid)).toEqual(all.slice(1));
    } finally {
      await gateway.stop();
    }
  });
});
