/**
 * bench/sched-timehist.ts: `perf sched timehist` read back and laid over the latency tail's
 * episodes (bench/profile-gateway.ts --sched), which says what held the event loop up.
 */
import { describe, expect, it } from "vitest";
import { cpuDuring, parseTimehist } from "../../bench/sched-timehist";

/** To the µs: the times are decimal fractions of a second, summed in floating point. */
const us = (ms: number) => Math.round(ms * 1000) / 1000;
const rounded = (entries: Iterable<readonly [string, number]>) =>
  Object.fromEntries([...entries].map(([k, v]) => [k, us(v)]));

// The shape perf 6.1's `perf sched timehist --state` prints (times in s, the rest in ms).
const TIMEHIST = `           time    cpu  task name                       wait time  sch delay   run time  state
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------  -----
    1000.010000 [0000]  node[100]                           0.000      0.000      5.000      R 
    1000.012000 [0001]  <idle>                              0.000      0.000     12.000      I 
    1000.013000 [0000]  node[104/100]                       0.000      0.000      3.000      S 
    1000.016000 [0001]  V8 DefaultWorke[101/100]            0.000      0.500      4.000      S 
    1000.020000 [0000]  node[100]                           0.000      3.000      4.000      S 
    1000.026000 [0000]  smtp-sink[200]                      1.000      0.100      2.000      D 
    1000.030000 [0001]  node[100]                           2.000      1.000      3.000      S 
`;

describe("perf sched timehist over the slowest messages' episodes", () => {
  it("reads each slice: when it ended, the CPU, the task and process, its wait for a CPU and its run", () => {
    const slices = parseTimehist(TIMEHIST);
    expect(slices).toHaveLength(7);
    expect({ ...slices[0], end: us(slices[0]?.end ?? 0) }).toEqual({
      end: 1000010,
      cpu: 0,
      task: "node",
      tid: 100,
      pid: 100,
      schedDelay: 0,
      run: 5,
      state: "R",
    });
    expect(slices[1]).toMatchObject({ task: "<idle>", tid: 0, pid: 0, run: 12 });
    expect(slices[2]).toMatchObject({ task: "node", tid: 104, pid: 100 });
    expect(slices[3]).toMatchObject({ task: "V8 DefaultWorke", tid: 101, pid: 100, schedDelay: 0.5, cpu: 1 });
    expect(slices[5]).toMatchObject({ task: "smtp-sink", tid: 200, pid: 200, state: "D" });
  });

  it("adds up each task's CPU within an episode and where the watched thread was off its CPU", () => {
    const slices = parseTimehist(TIMEHIST);
    const [whole, middle] = cpuDuring(
      slices,
      [
        { start: 1000000, end: 1000030, messages: 0 },
        { start: 1000012, end: 1000022, messages: 3 },
      ],
      (s) => (s.pid === 100 ? `gateway ${s.tid}` : s.task),
      100,
    );
    // The loop (tid 100) ran 5 + 4 + 3 ms; preempted at 1000.010 and back at 1000.016 (R, 6
    // ms); asleep from 1000.020 to its wake-up at 1000.026 (S, 6 ms), then 1 ms waiting again (R).
    expect(rounded(whole?.byTask ?? [])).toEqual({
      "gateway 100": 12,
      "<idle>": 12,
      "gateway 104": 3,
      "gateway 101": 4,
      "smtp-sink": 2,
    });
    expect(rounded(Object.entries(whole?.watchedOff ?? {}))).toEqual({ R: 7, S: 6 });
    // The episode from 1000.012 to 1000.022 clips every slice to itself.
    expect(rounded(middle?.byTask ?? [])).toEqual({
      "gateway 100": 4,
      "gateway 104": 1,
      "gateway 101": 4,
    });
    expect(rounded(Object.entries(middle?.watchedOff ?? {}))).toEqual({ R: 4, S: 2 });
    expect(us(middle?.byTask[0]?.[1] ?? 0)).toBe(4);
  });

  it("skips what is not a slice (perf's header, a summary line)", () => {
    expect(parseTimehist("Samples do not have callchains.\n  time cpu\n\n")).toEqual([]);
  });
});
