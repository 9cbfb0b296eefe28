/**
 * When the slowest messages of a latency run were slow: one stall that held up many messages at
 * once, or many separate moments. Each slow message is the interval from when it was due to its
 * 250; intervals that overlap (or are closer than `gapMs`) form one episode. A p99 that comes
 * from two or three episodes is a few moments of the machine (a collection, a burst of another
 * process's work); one from as many episodes as messages is the gateway's steady cost.
 *
 * Times are ms on CLOCK_MONOTONIC (`monotonicMs`), the clock every process on the machine shares,
 * so an episode can be matched with another process's record of the same moment (the gateway's
 * CPU profile, `perf sched`).
 */

export interface Interval {
  /** When the message was due (ms, CLOCK_MONOTONIC). */
  readonly start: number;
  /** When its 250 came (ms, CLOCK_MONOTONIC). */
  readonly end: number;
}

export interface Episode extends Interval {
  /** How many of the slow messages it holds. */
  readonly messages: number;
}

/** Now, in ms on CLOCK_MONOTONIC (process.hrtime), the clock every process on the machine reads alike. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The episodes of `slow` (any order), largest first (most messages; then the longest). */
export function episodes(slow: readonly Interval[], gapMs = 0): Episode[] {
  const sorted = [...slow].sort((a, b) => a.start - b.start);
  const found: { start: number; end: number; messages: number }[] = [];
  for (const { start, end } of sorted) {
    if (!(end >= start)) throw new Error(`a message's 250 (${end}) before it was due (${start})`);
    const last = found.at(-1);
    if (last && start <= last.end + gapMs) {
      last.end = Math.max(last.end, end);
      last.messages++;
    } else found.push({ start, end, messages: 1 });
  }
  return found.sort((a, b) => b.messages - a.messages || b.end - b.start - (a.end - a.start));
}

/** One line: how many episodes, and the largest ones' sizes and lengths. */
export function describeEpisodes(found: readonly Episode[], shown = 3): string {
  const total = found.reduce((sum, e) => sum + e.messages, 0);
  if (total === 0) return "no slow messages";
  const largest = found
    .slice(0, shown)
    .map((e) => `${e.messages} in ${(e.end - e.start).toFixed(0)} ms`)
    .join(", ");
  return `${total} in ${found.length} episode${found.length === 1 ? "" : "s"} (the largest: ${largest})`;
}
