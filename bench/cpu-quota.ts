/**
 * A bench aid: start a process under a CPU quota, as a container's is (Azure Container Apps gives
 * the gateway's container `cpu: 1`, a CFS quota of one CPU's time on a host with many). This
 * process moves itself into a new cgroup with the quota, spawns (a child starts in its parent's
 * cgroup), and moves itself back, so only the child is held to it. Linux, as root, with cgroup
 * v1's cpu controller at /sys/fs/cgroup/cpu or cgroup v2 at /sys/fs/cgroup.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const V1 = "/sys/fs/cgroup/cpu";
const V2 = "/sys/fs/cgroup";
const PERIOD_US = 100_000;

/** Where this process's cgroup for the cpu controller is, and which version it is. */
function ownCgroup(): { dir: string; v2: boolean } {
  const lines = readFileSync("/proc/self/cgroup", "utf8").trim().split("\n");
  const v1 = lines.map((l) => l.split(":")).find(([, controllers]) => controllers?.split(",").includes("cpu"));
  if (v1 && existsSync(join(V1, "cpu.cfs_quota_us"))) return { dir: join(V1, v1[2] ?? "/"), v2: false };
  const v2 = lines.map((l) => l.split(":")).find(([id, controllers]) => id === "0" && controllers === "");
  if (v2 && existsSync(join(V2, "cgroup.controllers"))) return { dir: join(V2, v2[2] ?? "/"), v2: true };
  throw new Error("no cgroup cpu controller found (cgroup v1 at /sys/fs/cgroup/cpu or v2 at /sys/fs/cgroup)");
}

/**
 * Calls `spawn` (which must start its child before it returns, as child_process.spawn does)
 * from inside a cgroup limited to `cpus` CPUs' time. `remove` deletes the cgroup once the
 * child has exited.
 */
export function spawnInCpuQuota<T>(cpus: number, name: string, spawn: () => T): { started: T; remove: () => void } {
  const own = ownCgroup();
  const dir = join(own.dir, name);
  mkdirSync(dir, { recursive: true });
  const quota = Math.round(cpus * PERIOD_US);
  if (own.v2) {
    writeFileSync(join(own.dir, "cgroup.subtree_control"), "+cpu");
    writeFileSync(join(dir, "cpu.max"), `${quota} ${PERIOD_US}`);
  } else {
    writeFileSync(join(dir, "cpu.cfs_period_us"), String(PERIOD_US));
    writeFileSync(join(dir, "cpu.cfs_quota_us"), String(quota));
  }
  writeFileSync(join(dir, "cgroup.procs"), String(process.pid));
  try {
    return { started: spawn(), remove: () => rmdirSync(dir) };
  } finally {
    writeFileSync(join(own.dir, "cgroup.procs"), String(process.pid));
  }
}
