/**
 * How many CPUs the gateway can keep busy (gateway/usable-cpus.ts), which decides where the
 * verdict runs with `filters.scanThread: "auto"`: the affinity mask's count, limited by a
 * cgroup CPU quota, read from the files a container, a systemd unit or Kubernetes sets, here
 * given as a table of path -> text.
 */
import { describe, expect, it } from "vitest";
import { cgroupCpuQuota, usableCpus } from "../../gateway/usable-cpus";

const files = (table: Record<string, string>) => (path: string) => table[path];

describe("the cgroup CPU quota", () => {
  it("reads cgroup v2's cpu.max in a container's own cgroup (Azure Container Apps, docker --cpus)", () => {
    const one = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "100000 100000\n" });
    expect(cgroupCpuQuota(one)).toBe(1);
    expect(usableCpus(one, 16)).toBe(1);
    const two = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "200000 100000\n" });
    expect(usableCpus(two, 16)).toBe(2);
  });

  it("counts only whole CPUs: 1.5 is 1, 2.5 is 2", () => {
    const quota = (limit: number) =>
      cgroupCpuQuota(files({ "/proc/self/cgroup": "0::/", "/sys/fs/cgroup/cpu.max": `${limit} 100000` }));
    expect(quota(150000)).toBe(1);
    expect(quota(250000)).toBe(2);
    expect(quota(50000)).toBe(1); // half a CPU still runs one thread
  });

  it("takes the smallest limit from the process's cgroup up to the root (a unit inside a limited slice)", () => {
    const read = files({
      "/proc/self/cgroup": "0::/moat.slice/moat.service\n",
      "/sys/fs/cgroup/moat.slice/moat.service/cpu.max": "max 100000\n",
      "/sys/fs/cgroup/moat.slice/cpu.max": "300000 100000\n",
      "/sys/fs/cgroup/cpu.max": "800000 100000\n",
    });
    expect(cgroupCpuQuota(read)).toBe(3);
    expect(usableCpus(read, 2)).toBe(2); // the mask allows fewer still
  });

  it("reads cgroup v1's cfs quota and period, also at the controller's mount in a cgroup namespace", () => {
    const namespaced = files({
      "/proc/self/cgroup": "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "100000\n",
      "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    });
    expect(usableCpus(namespaced, 8)).toBe(1);
    const host = files({
      "/proc/self/cgroup": "3:cpu:/system.slice/moat.service\n",
      "/sys/fs/cgroup/cpu/system.slice/moat.service/cpu.cfs_quota_us": "400000\n",
      "/sys/fs/cgroup/cpu/system.slice/moat.service/cpu.cfs_period_us": "100000\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    });
    expect(usableCpus(host, 8)).toBe(4);
  });

  it("on a hybrid host, a v1 limit counts beside an unlimited v2 entry", () => {
    const read = files({
      "/proc/self/cgroup": "4:memory:/\n1:cpu:/\n0::/\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "200000",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
    });
    expect(usableCpus(read, 8)).toBe(2);
  });

  it("without a limit (none set, 'max', -1, unreadable or malformed files) the affinity mask decides", () => {
    const cases: Record<string, string>[] = [
      {},
      { "/proc/self/cgroup": "0::/\n" },
      { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "max 100000\n" },
      { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "lots\n" },
      { "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/cpu.max": "100000 0\n" },
      {
        "/proc/self/cgroup": "2:cpu,cpuacct:/\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
      },
      { "/proc/self/cgroup": "7:memory:/limited\n", "/sys/fs/cgroup/memory/limited/cpu.cfs_quota_us": "100000" },
    ];
    for (const table of cases) {
      expect(cgroupCpuQuota(files(table)), JSON.stringify(table)).toBeUndefined();
      expect(usableCpus(files(table), 6)).toBe(6);
    }
  });
});
