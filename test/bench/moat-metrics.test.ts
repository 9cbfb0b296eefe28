/**
 * The benches' reading of the gateway's own accept times (bench/moat-metrics.ts): GET /metrics
 * scraped before and after a run, each stage's p50 / p99 of what was observed between the two,
 * as bench/peers.ts and bench/profile-gateway.ts print them.
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acceptStagesBetween, quantileMs, scrapeMoatMetrics } from "../../bench/moat-metrics";

/** A moat_accept_seconds histogram as GET /metrics writes it: cumulative counts by upper bound (s). */
const histogram = (stage: string, counts: readonly [string, number][]) =>
  counts.map(([le, count]) => `moat_accept_seconds_bucket{stage="${stage}",le="${le}"} ${count}`).join("\n");

const BEFORE = [
  histogram("verdict", [
    ["0.001", 10],
    ["0.005", 10],
    ["0.01", 10],
    ["0.05", 10],
    ["+Inf", 10],
  ]),
  histogram("spool", [
    ["0.001", 3],
    ["+Inf", 4],
  ]),
  "moat_event_loop_busy_seconds_total 1.5",
].join("\n");

// Between the scrapes: 100 verdicts, 50 in (1, 5] ms, 48 in (5, 10], 2 in (10, 50]; no spool step.
const AFTER = [
  histogram("verdict", [
    ["0.001", 10],
    ["0.005", 60],
    ["0.01", 108],
    ["0.05", 110],
    ["+Inf", 110],
  ]),
  histogram("spool", [
    ["0.001", 3],
    ["+Inf", 4],
  ]),
  "moat_event_loop_busy_seconds_total 2.5",
].join("\n");

describe("the gateway's accept times between two scrapes", () => {
  let server: Server;
  let url: string;
  let scrapes = 0;

  beforeAll(async () => {
    server = createServer((_request, response) => {
      response.end(scrapes++ === 0 ? BEFORE : AFTER);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("gives each observed stage's p50 / p99, within its bucket as histogram_quantile does, and leaves out stages with nothing new", async () => {
    const before = await scrapeMoatMetrics(url);
    const after = await scrapeMoatMetrics(url);
    // p50: the 50th of 100 is the last in (1, 5] ms; p99: the 99th is the first of the two in (10, 50].
    expect(quantileMs(before, after, "verdict", 0.5)).toBeCloseTo(5, 6);
    expect(quantileMs(before, after, "verdict", 0.99)).toBeCloseTo(30, 6);
    expect(quantileMs(before, after, "spool", 0.99)).toBeUndefined();
    expect(acceptStagesBetween(before, after)).toEqual(["verdict 5.0 / 30.0"]);
    expect(after.loopBusySeconds - before.loopBusySeconds).toBe(1);
  });
});
