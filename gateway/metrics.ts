/**
 * Prometheus metrics (text exposition format 0.0.4) for `GET /metrics`: counters the mail
 * path increments, histograms it observes (how long accepting and delivering took, by stage), and
 * series read at scrape time (queue sizes, the event loop's load: event-loop.ts). No client
 * library: the format is a few lines, and the series here are plain numbers in one process.
 */
export const COUNTERS = {
  moat_smtp_sessions_total: "SMTP sessions opened",
  moat_smtp_refusals_total: "SMTP refusals by the gateway, by reason",
  moat_messages_accepted_total: "messages accepted (250) by direction",
  moat_delivery_attempts_total: "delivery attempts per recipient, by outcome",
  moat_bounces_total: "DSN bounces queued",
} as const;
export type CounterName = keyof typeof COUNTERS;

/** Upper bounds in seconds: fine between 1 and 100 ms, where an SMTP accept should be. */
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
  60,
] as const;

/**
 * Upper bounds in seconds for delivery: an attempt takes milliseconds to a minute; a message
 * deferred can wait hours to days in the queue (the last bound is Postfix's default queue
 * lifetime, five days).
 */
const DELIVERY_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400, 432000,
] as const;

/** The stages of `moat_accept_seconds`, in the order a message passes them. */
export const ACCEPT_STAGES = ["transfer", "verdict", "spool", "record", "total"] as const;
export type AcceptStage = (typeof ACCEPT_STAGES)[number];

export const HISTOGRAMS = {
  moat_accept_seconds: {
    help: "time to accept a message (250), by stage: transfer (354 to the end of the data), verdict (to the verdict; with filters on), spool (to on disk), record (to on record in the tracker and the 250), total (354 to 250)",
    buckets: LATENCY_BUCKETS,
  },
  moat_delivery_seconds: {
    help: "delivery, by stage: attempt (one attempt to deliver a message, whatever its outcome), delivered (from the message's arrival to its delivery, per recipient delivered, deferrals included)",
    buckets: DELIVERY_BUCKETS,
  },
} as const;
export type HistogramName = keyof typeof HISTOGRAMS;

/**
 * Series read at scrape time: name -> value, or label value -> value. A gauge unless `type`
 * says counter (a total kept elsewhere, such as the event loop's busy time).
 */
export type ScrapedSeries = Readonly<
  Record<
    string,
    { type?: "gauge" | "counter"; help: string; label?: string; values: number | Readonly<Record<string, number>> }
  >
>;

export interface Metrics {
  inc(name: CounterName, labels?: Readonly<Record<string, string>>): void;
  observe(name: HistogramName, labels: Readonly<Record<string, string>>, seconds: number): void;
  /** The exposition text, with the series read at scrape time. */
  render(scraped: ScrapedSeries): string;
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}`;
}

interface HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not yet cumulative); the last one is +Inf. */
  readonly counts: number[];
  sum: number;
}

export function createMetrics(): Metrics {
  const counts = new Map<CounterName, Map<string, number>>();
  const histograms = new Map<HistogramName, Map<string, HistogramSeries>>();
  return {
    observe(name, labels, seconds) {
      const { buckets } = HISTOGRAMS[name];
      const all = histograms.get(name) ?? new Map<string, HistogramSeries>();
      histograms.set(name, all);
      const key = labelText(labels);
      let series = all.get(key);
      if (!series) {
        series = { labels, counts: new Array<number>(buckets.length + 1).fill(0), sum: 0 };
        all.set(key, series);
      }
      let bucket = 0;
      while (bucket < buckets.length && seconds > (buckets[bucket] as number)) bucket++;
      series.counts[bucket] = (series.counts[bucket] ?? 0) + 1;
      series.sum += seconds;
    },
    inc(name, labels = {}) {
      const series = counts.get(name) ?? new Map<string, number>();
      const key = labelText(labels);
      series.set(key, (series.get(key) ?? 0) + 1);
      counts.set(name, series);
    },
    render(scraped) {
      const lines: string[] = [];
      for (const [name, help] of Object.entries(COUNTERS) as [CounterName, string][]) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        const series = counts.get(name);
        if (!series || series.size === 0) lines.push(`${name} 0`);
        else for (const [labels, value] of series) lines.push(`${name}${labels} ${value}`);
      }
      for (const [name, { help, buckets }] of Object.entries(HISTOGRAMS) as [
        HistogramName,
        (typeof HISTOGRAMS)[HistogramName],
      ][]) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
        for (const series of histograms.get(name)?.values() ?? []) {
          let cumulative = 0;
          series.counts.forEach((count, i) => {
            cumulative += count;
            const le = i < buckets.length ? String(buckets[i]) : "+Inf";
            lines.push(`${name}_bucket${labelText({ ...series.labels, le })} ${cumulative}`);
          });
          lines.push(`${name}_sum${labelText(series.labels)} ${series.sum}`);
          lines.push(`${name}_count${labelText(series.labels)} ${cumulative}`);
        }
      }
      for (const [name, gauge] of Object.entries(scraped)) {
        lines.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} ${gauge.type ?? "gauge"}`);
        if (typeof gauge.values === "number") lines.push(`${name} ${gauge.values}`);
        else
          for (const [label, value] of Object.entries(gauge.values))
            lines.push(`${name}${labelText({ [gauge.label ?? "label"]: label })} ${value}`);
      }
      return `${lines.join("\n")}\n`;
    },
  };
}
