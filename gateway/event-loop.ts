/**
 * The event loop's load, for `GET /metrics`. One loop runs every session's replies, the verdict
 * and the spool's steps, so it is the gateway's capacity: when it is busy most of the time,
 * replies wait behind other sessions' work and accept latency grows (README "Benchmarks").
 *
 * - `moat_event_loop_busy_seconds_total`: time the loop spent running code rather than waiting
 *   (Node's event-loop utilisation); `rate()` of it is the share of one core it used.
 * - `moat_event_loop_delay_seconds{quantile}`: how late a timer due every 10 ms ran, p50, p99
 *   and max, over the time since the previous scrape (reset by each scrape, as prom-client's
 *   `nodejs_eventloop_lag_*` are). A reply that arrives while the loop is busy waits about
 *   that long before the gateway reads it.
 */
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { ScrapedSeries } from "./metrics";

/** How often the delay monitor's timer is due (libuv timer, in C++: no JavaScript runs for it). */
export const DELAY_RESOLUTION_MS = 10;

/**
 * How late the monitor's timer ran, in ms, from one of its readings (ns). The monitor records
 * the whole interval: a timer due in 10 ms that ran at 10 ms is a 10 ms reading, 0 late.
 */
export function lateMs(ns: number): number {
  return Math.max(0, ns / 1e6 - DELAY_RESOLUTION_MS);
}

export interface EventLoopMonitor {
  /** The series as of now; restarts the delay's window. */
  scrape(): ScrapedSeries;
  stop(): void;
}

export function monitorEventLoop(): EventLoopMonitor {
  const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  delay.enable();
  return {
    scrape() {
      const late = (ns: number) => (delay.count === 0 ? 0 : lateMs(ns) / 1e3);
      const values = {
        "0.5": late(delay.percentile(50)),
        "0.99": late(delay.percentile(99)),
        max: late(delay.max),
      };
      delay.reset();
      return {
        moat_event_loop_busy_seconds_total: {
          type: "counter",
          help: "time the event loop spent running code (not waiting); rate() is the share of a core it used",
          values: performance.eventLoopUtilization().active / 1000,
        },
        moat_event_loop_delay_seconds: {
          help: "how late the event loop ran a timer due every 10 ms, since the previous scrape (p50, p99, max)",
          label: "quantile",
          values,
        },
      };
    },
    stop: () => delay.disable(),
  };
}
