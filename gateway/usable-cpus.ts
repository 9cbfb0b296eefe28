/**
 * How many CPUs this process can keep busy: the CPUs it may run on (the affinity mask, as
 * `os.availableParallelism()` counts them), limited by a cgroup CPU quota when there is one.
 * Node 20's libuv does not read the quota (libuv 1.46; later versions do), and a container
 * given one vCPU on a many-core host (Azure Container Apps, `docker --cpus=1`, Kubernetes'
 * `resources.limits.cpu`) sees every core of the host in the mask: only the quota says 1.
 *
 * The quota is found from `/proc/self/cgroup`: cgroup v2's `cpu.max` ("limit period", or
 * "max") in the process's cgroup and every parent up to the mount, the smallest (as libuv 1.51
 * reads it); cgroup v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none) in the cpu
 * controller's hierarchy, likewise. Hybrid hosts list both; each found limit counts. A quota
 * of 1.5 CPUs is 1 (libuv rounds down too): a second busy thread would be throttled, not run
 * beside the first.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

/** Reads a file's text, or undefined when it cannot (absent, not a cgroup file). */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

const CGROUP_MOUNT = "/sys/fs/cgroup";

/** `dir` and each parent up to `mount`, deepest first. */
function upTo(mount: string, dir: string): string[] {
  const dirs: string[] = [];
  let path = dir.replace(/\/+$/, "");
  while (path.startsWith(mount)) {
    dirs.push(path);
    if (path === mount) break;
    path = path.slice(0, path.lastIndexOf("/"));
  }
  return dirs;
}

/** The smallest of the limits found, or undefined when none was. */
function smallest(limits: Iterable<number | undefined>): number | undefined {
  let least: number | undefined;
  for (const limit of limits) if (limit !== undefined) least = Math.min(least ?? limit, limit);
  return least;
}

/** CPUs a `limit` of CPU time every `period` allows, or undefined for no limit or bad text. */
function cpusOf(limit: number, period: number): number | undefined {
  if (!Number.isFinite(limit) || !Number.isFinite(period) || limit <= 0 || period <= 0) return undefined;
  return Math.max(1, Math.floor(limit / period));
}

function v2Quota(path: string, read: ReadText): number | undefined {
  return smallest(
    upTo(CGROUP_MOUNT, `${CGROUP_MOUNT}${path}`).map((dir) => {
      const text = read(`${dir}/cpu.max`)?.trim();
      if (!text || text.startsWith("max")) return undefined;
      const [limit, period] = text.split(/\s+/).map(Number);
      return cpusOf(limit ?? NaN, period ?? NaN);
    }),
  );
}

/**
 * cgroup v1: the cpu controller's hierarchy is mounted as `cpu,cpuacct` (often with `cpu` a
 * link to it) or `cpu` alone. In a container with its own cgroup namespace the mount's root is
 * the container's cgroup, so the path from /proc/self/cgroup may not exist under it: the mount
 * itself is read too (it is the last of `upTo`).
 */
function v1Quota(controllers: string, path: string, read: ReadText): number | undefined {
  const mounts = new Set([`${CGROUP_MOUNT}/${controllers}`, `${CGROUP_MOUNT}/cpu`]);
  return smallest(
    [...mounts].flatMap((mount) =>
      upTo(mount, `${mount}${path}`).map((dir) =>
        cpusOf(Number(read(`${dir}/cpu.cfs_quota_us`)?.trim()), Number(read(`${dir}/cpu.cfs_period_us`)?.trim())),
      ),
    ),
  );
}

/** The cgroup CPU quota in whole CPUs (at least 1), or undefined when none limits this process. */
export function cgroupCpuQuota(read: ReadText = readText): number | undefined {
  const table = read("/proc/self/cgroup");
  if (!table) return undefined;
  return smallest(
    table.split("\n").map((line) => {
      // "hierarchy-id:controllers:path"; the path may itself contain ':'
      const match = /^(\d+):([^:]*):(\/.*)$/.exec(line.trim());
      if (!match) return undefined;
      const [, id, controllers = "", rawPath = "/"] = match;
      const path = rawPath === "/" ? "" : rawPath;
      if (id === "0" && controllers === "") return v2Quota(path, read);
      return controllers.split(",").includes("cpu") ? v1Quota(controllers, path, read) : undefined;
    }),
  );
}

/** CPUs this process can keep busy: the affinity mask's count, at most the cgroup quota. */
export function usableCpus(read: ReadText = readText, cpusInMask: number = availableParallelism()): number {
  const quota = cgroupCpuQuota(read);
  return quota === undefined ? cpusInMask : Math.min(cpusInMask, quota);
}
