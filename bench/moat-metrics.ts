/**
 * The gateway's own account of where accept time goes: `moat_accept_seconds` (GET /metrics),
 * scraped before and after a run, turned into p50 / p99 per stage the way Prometheus'
 * histogram_quantile does (linear within a bucket, so a figure is as fine as its bucket); and
 * its event loop over the run: the share of a core it was busy, and how late it ran a timer
 * (`moat_event_loop_*`; the scrape before the run starts the delay's window).
 */
import { ACCEPT_STAGES } from "../gateway/metrics";

type Buckets = Map<string, Map<number, number>>; // stage -> upper bound -> cumulative count

export interface Scrape {
  readonly stages: Buckets;
  /** moat_event_loop_busy_seconds_total */
  readonly loopBusySeconds: number;
  /** moat_event_loop_delay_seconds since the scrape before, in ms. */
  readonly loopLateMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** When it was scraped (performance.now(), ms). */
  readonly at: number;
}

export async function scrapeMoatMetrics(metricsUrl: string): Promise<Scrape> {
  const text = await (await fetch(metricsUrl)).text();
  const at = performance.now();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? Number.NaN);
  const late = (quantile: string) =>
    1000 * value(new RegExp(`^moat_event_loop_delay_seconds\\{quantile="${quantile}"\\} (\\S+)$`, "m"));
  return {
    stages: stageBuckets(text),
    loopBusySeconds: value(/^moat_event_loop_busy_seconds_total (\S+)$/m),
    loopLateMs: { p50: late("0.5"), p99: late("0.99"), max: late("max") },
    at,
  };
}

/** The event loop between two scrapes: its share of a core, and how late it ran. */
export function eventLoopBetween(before: Scrape, after: Scrape): string {
  const busy = (after.loopBusySeconds - before.loopBusySeconds) / ((after.at - before.at) / 1000);
  const { p50, p99, max } = after.loopLateMs;
  return `busy ${(100 * busy).toFixed(0)}% of a core, late p50 ${p50.toFixed(1)} / p99 ${p99.toFixed(1)} / max ${max.toFixed(1)} ms (moat_event_loop_*)`;
}

function stageBuckets(text: string): Buckets {
  const stages: Buckets = new Map();
  for (const [, stage = "", le = "", count = "0"] of text.matchAll(
    /^moat_accept_seconds_bucket\{stage="(\w+)",le="([^"]+)"\} (\d+)$/gm,
  )) {
    const buckets = stages.get(stage) ?? new Map<number, number>();
    buckets.set(le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le), Number(count));
    stages.set(stage, buckets);
  }
  return stages;
}

/** Quantile q of what was observed between two scrapes, in ms (undefined: nothing observed). */
export function quantileMs(before: Scrape, after: Scrape, stage: string, q: number): number | undefined {
  const now = [...(after.stages.get(stage) ?? new Map<number, number>())].sort((a, b) => a[0] - b[0]);
  const then = before.stages.get(stage);
  const counts = now.map(([le, count]) => [le, count - (then?.get(le) ?? 0)] as const);
  const total = counts.at(-1)?.[1] ?? 0;
  if (total === 0) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of counts) {
    if (cumulative >= rank) {
      if (le === Number.POSITIVE_INFINITY) return lower * 1000; // past the last bound: its bound is all we know
      return (lower + ((le - lower) * (rank - below)) / Math.max(1, cumulative - below)) * 1000;
    }
    lower = le;
    below = cumulative;
  }
  return undefined;
}

/** Each accept stage's p50 / p99 between two scrapes ("verdict 0.9 / 3.5"), the stages observed. */
export function acceptStagesBetween(before: Scrape, after: Scrape): string[] {
  return ACCEPT_STAGES.flatMap((stage) => {
    const [p50, p99] = [0.5, 0.99].map((q) => quantileMs(before, after, stage, q));
    return p50 === undefined || p99 === undefined ? [] : [`${stage} ${p50.toFixed(1)} / ${p99.toFixed(1)}`];
  });
}
