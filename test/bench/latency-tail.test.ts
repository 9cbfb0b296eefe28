/**
 * bench/latency-tail.ts: the slowest messages of a latency run grouped by the moment they were
 * slow, which the peers bench prints to tell a few stalls from a steady cost.
 */
import { describe, expect, it } from "vitest";
import { describeEpisodes, episodes, monotonicMs } from "../../bench/latency-tail";

describe("the latency tail's episodes", () => {
  it("puts messages that were slow at the same moment in one episode, largest first", () => {
    const found = episodes([
      { start: 1000, end: 1040 },
      { start: 10, end: 50 },
      { start: 1010, end: 1045 },
      { start: 30, end: 60 },
      { start: 1044, end: 1090 },
      { start: 5000, end: 5030 },
    ]);
    expect(found).toEqual([
      { start: 1000, end: 1090, messages: 3 },
      { start: 10, end: 60, messages: 2 },
      { start: 5000, end: 5030, messages: 1 },
    ]);
    expect(describeEpisodes(found, 2)).toBe("6 in 3 episodes (the largest: 3 in 90 ms, 2 in 50 ms)");
  });

  it("keeps apart messages slow one after another unless within the gap", () => {
    const slow = [
      { start: 0, end: 30 },
      { start: 35, end: 60 },
    ];
    expect(episodes(slow).map((e) => e.messages)).toEqual([1, 1]);
    expect(episodes(slow, 5)).toEqual([{ start: 0, end: 60, messages: 2 }]);
  });

  it("orders episodes of as many messages by length, and says when there were none", () => {
    const found = episodes([
      { start: 0, end: 20 },
      { start: 100, end: 160 },
    ]);
    expect(found.map((e) => e.end - e.start)).toEqual([60, 20]);
    expect(describeEpisodes([])).toBe("no slow messages");
    expect(describeEpisodes(found.slice(0, 1))).toBe("1 in 1 episode (the largest: 1 in 60 ms)");
  });

  it("refuses a message answered before it was due, which a clock mix-up would give", () => {
    expect(() => episodes([{ start: 50, end: 40 }])).toThrow(/before it was due/);
  });

  it("reads the clock other processes share (CLOCK_MONOTONIC, as process.hrtime)", () => {
    const before = Number(process.hrtime.bigint()) / 1e6;
    const now = monotonicMs();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now - before).toBeLessThan(1000);
  });
});
