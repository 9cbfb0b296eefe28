/**
 * Prometheus metrics (text exposition format 0.0.4) for `GET /metrics`: counters the mail
 * path increments, and gauges read at scrape time (queue sizes). No client library: the
 * format is a few lines, and counters here are plain numbers in one process.
 */
export const COUNTERS = {
  moat_smtp_sessions_total: "SMTP sessions opened",
  moat_smtp_refusals_total: "SMTP refusals by the gateway, by reason",
  moat_messages_accepted_total: "messages accepted (250) by direction",
  moat_delivery_attempts_total: "delivery attempts per recipient, by outcome",
  moat_bounces_total: "DSN bounces queued",
} as const;
export type CounterName = keyof typeof COUNTERS;

export interface Metrics {
  inc(name: CounterName, labels?: Readonly<Record<string, string>>): void;
  /** The exposition text, with the given gauges (name -> value, or label value -> value). */
  render(
    gauges: Readonly<
      Record<string, { help: string; label?: string; values: number | Readonly<Record<string, number>> }>
    >,
  ): string;
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`).join(",")}}`;
}

export function createMetrics(): Metrics {
  const counts = new Map<CounterName, Map<string, number>>();
  return {
    inc(name, labels = {}) {
      const series = counts.get(name) ?? new Map<string, number>();
      const key = labelText(labels);
      series.set(key, (series.get(key) ?? 0) + 1);
      counts.set(name, series);
    },
    render(gauges) {
      const lines: string[] = [];
      for (const [name, help] of Object.entries(COUNTERS) as [CounterName, string][]) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        const series = counts.get(name);
        if (!series || series.size === 0) lines.push(`${name} 0`);
        else for (const [labels, value] of series) lines.push(`${name}${labels} ${value}`);
      }
      for (const [name, gauge] of Object.entries(gauges)) {
        lines.push(`# HELP ${name} ${gauge.help}`, `# TYPE ${name} gauge`);
        if (typeof gauge.values === "number") lines.push(`${name} ${gauge.values}`);
        else
          for (const [label, value] of Object.entries(gauge.values))
            lines.push(`${name}${labelText({ [gauge.label ?? "label"]: label })} ${value}`);
      }
      return `${lines.join("\n")}\n`;
    },
  };
}
