import { describe, expect, it } from "vitest";
import { build } from "../../gateway/web/app";

describe("the HTTP app", () => {
  it("answers /healthz with the report, 503 when degraded", async () => {
    let status: "ok" | "degraded" = "ok";
    const app = build({ health: async () => ({ status, customer: "acme", checks: { smtp: "listening" } }) });
    const ok = await app.inject({ method: "GET", url: "/healthz" });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ status: "ok", customer: "acme", checks: { smtp: "listening" } });
    status = "degraded";
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(503);
    expect((await app.inject({ method: "GET", url: "/nothing-here" })).statusCode).toBe(404);
    await app.close();
  });
});

describe("MTA-STS policy", () => {
  const app = () =>
    build({
      health: async () => ({ status: "ok", customer: "acme", checks: {} }),
      mtaSts: [
        { name: "acme.com", mtaSts: "enforce", mxHosts: ["mx.acme.com"] },
        { name: "old.example", mtaSts: "none", mxHosts: ["old-example.mail.protection.outlook.com"] },
      ],
    });

  it("serves the declared mode and MX hosts to the mta-sts host of a customer domain", async () => {
    const web = app();
    const response = await web.inject({
      method: "GET",
      url: "/.well-known/mta-sts.txt",
      headers: { host: "MTA-STS.acme.com:443" },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(response.body).toBe("version: STSv1\r\nmode: enforce\r\nmx: mx.acme.com\r\nmax_age: 604800\r\n");
    await web.close();
  });

  it("has no policy for a domain with MTA-STS off or for any other host", async () => {
    const web = app();
    for (const host of ["mta-sts.old.example", "mta-sts.evil.example", "acme.com"]) {
      expect((await web.inject({ method: "GET", url: "/.well-known/mta-sts.txt", headers: { host } })).statusCode).toBe(
        404,
      );
    }
    await web.close();
  });
});

describe("metrics", () => {
  it("renders counters with labels and gauges in Prometheus text format", async () => {
    const { createMetrics } = await import("../../gateway/metrics.js");
    const metrics = createMetrics();
    metrics.inc("moat_messages_accepted_total", { direction: "inbound" });
    metrics.inc("moat_messages_accepted_total", { direction: "inbound" });
    metrics.inc("moat_smtp_refusals_total", { reason: "relay-denied" });
    const app = build({
      health: async () => ({ status: "ok", customer: "acme", checks: {} }),
      metrics: async () =>
        metrics.render({
          moat_queue_messages: { help: "messages in the queue", label: "state", values: { incoming: 3, deferred: 1 } },
        }),
    });
    const response = await app.inject({ method: "GET", url: "/metrics" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(response.body).toContain(
      '# TYPE moat_messages_accepted_total counter\nmoat_messages_accepted_total{direction="inbound"} 2\n',
    );
    expect(response.body).toContain('moat_smtp_refusals_total{reason="relay-denied"} 1\n');
    expect(response.body).toContain("moat_bounces_total 0\n");
    expect(response.body).toContain(
      '# TYPE moat_queue_messages gauge\nmoat_queue_messages{state="incoming"} 3\nmoat_queue_messages{state="deferred"} 1\n',
    );
    await app.close();
  });

  it("renders the accept-time histogram with cumulative buckets, an upper bound counting as inside", async () => {
    const { createMetrics } = await import("../../gateway/metrics.js");
    const metrics = createMetrics();
    for (const seconds of [0.004, 0.005, 0.012, 100])
      metrics.observe("moat_accept_seconds", { stage: "total" }, seconds);
    metrics.observe("moat_accept_seconds", { stage: "spool" }, 0.0001);
    const text = metrics.render({});
    expect(text).toContain("# TYPE moat_accept_seconds histogram\n");
    const bucket = (stage: string, le: string) =>
      Number(
        new RegExp(
          `^moat_accept_seconds_bucket\\{stage="${stage}",le="${le.replace("+", "\\+")}"\\} (\\d+)$`,
          "m",
        ).exec(text)?.[1],
      );
    expect(bucket("total", "0.003")).toBe(0);
    expect(bucket("total", "0.005")).toBe(2);
    expect(bucket("total", "0.01")).toBe(2);
    expect(bucket("total", "0.015")).toBe(3);
    expect(bucket("total", "60")).toBe(3);
    expect(bucket("total", "+Inf")).toBe(4);
    expect(bucket("spool", "0.0005")).toBe(1);
    expect(text).toMatch(/^moat_accept_seconds_count\{stage="total"\} 4$/m);
    expect(Number(/^moat_accept_seconds_sum\{stage="total"\} (\S+)$/m.exec(text)?.[1])).toBeCloseTo(100.021, 6);
    expect(text).toMatch(/^moat_accept_seconds_count\{stage="spool"\} 1$/m);
  });

  it("reports the event loop's busy time as a counter and how late it ran since the previous scrape", async () => {
    const { createMetrics } = await import("../../gateway/metrics.js");
    const { monitorEventLoop } = await import("../../gateway/event-loop.js");
    const metrics = createMetrics();
    const loop = monitorEventLoop();
    const scrape = () => metrics.render(loop.scrape());
    const busy = (text: string) => Number(/^moat_event_loop_busy_seconds_total (\S+)$/m.exec(text)?.[1]);
    const late = (text: string, quantile: string) =>
      Number(new RegExp(`^moat_event_loop_delay_seconds\\{quantile="${quantile}"\\} (\\S+)$`, "m").exec(text)?.[1]);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    try {
      await sleep(50);
      const before = scrape();
      expect(before).toContain("# TYPE moat_event_loop_busy_seconds_total counter\n");
      expect(before).toContain("# TYPE moat_event_loop_delay_seconds gauge\n");
      await sleep(30);
      const blockedAt = performance.now();
      while (performance.now() - blockedAt < 200); // the loop held for 200 ms, as by a stuck verdict
      await sleep(40);
      const blocked = scrape();
      expect(busy(blocked) - busy(before)).toBeGreaterThanOrEqual(0.19);
      expect(late(blocked, "max")).toBeGreaterThanOrEqual(0.15);
      expect(late(blocked, "max")).toBeLessThan(1);
      // The next window does not hold the stall, and the counter only grows.
      await sleep(120);
      const after = scrape();
      expect(late(after, "max")).toBeLessThan(0.15);
      expect(busy(after)).toBeGreaterThanOrEqual(busy(blocked));
    } finally {
      loop.stop();
    }
  });
});
