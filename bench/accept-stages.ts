/**
 * The gateway's own account of where accept time goes: `moat_accept_seconds` (GET /metrics),
 * scraped before and after a run, turned into p50 / p99 per stage the way Prometheus'
 * histogram_quantile does (linear within a bucket, so a figure is as fine as its bucket).
 */
type Buckets = Map<string, Map<number, number>>; // stage -> upper bound -> cumulative count

export async function scrapeAcceptStages(metricsUrl: string): Promise<Buckets> {
  const text = await (await fetch(metricsUrl)).text();
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
export function quantileMs(before: Buckets, after: Buckets, stage: string, q: number): number | undefined {
  const now = [...(after.get(stage) ?? new Map<number, number>())].sort((a, b) => a[0] - b[0]);
  const then = before.get(stage);
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
