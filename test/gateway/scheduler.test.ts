import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { createDelivery } from "../../gateway/delivery/scheduler";
import type { RecipientOutcome } from "../../gateway/delivery/smtp-client";
import { silentLogger } from "../../gateway/log";
import { type Metrics, createMetrics } from "../../gateway/metrics";
import { type Spool, createSpool } from "../../gateway/queue/spool";
import { waitUntil } from "../helpers/gateway-process";

const envelope = {
  mailFrom: "a@outside.example",
  rcptTo: ["jo@acme.com"],
  receivedAt: new Date().toISOString(),
  client: { ip: "192.0.2.1", helo: "mx.outside.example", tls: false },
};
const target = { host: "127.0.0.1", port: 1, tls: "required" as const, verifyCertificate: true, heloName: "gw.test" };
const prelude = Buffer.from("Received: from mx.outside.example by gw.test\r\n");
const body = Buffer.from("Subject: handed over\r\n\r\nhello\r\n");
const meta = { headers: ["Authentication-Results: gw.test; spf=pass"] };

/** A spool that counts how often delivery reads a message back from its file. */
async function countingSpool(): Promise<{ spool: Spool; reads: () => number }> {
  const spool = createSpool(mkdtempSync(join(tmpdir(), "moat-handoff-")));
  await spool.recover();
  let reads = 0;
  return {
    spool: {
      ...spool,
      read: (state, id) => {
        reads++;
        return spool.read(state, id);
      },
    },
    reads: () => reads,
  };
}

/** Delivery whose smart host answers `outcome()` and records what it was sent. */
function recordingDelivery(
  spool: Spool,
  outcome: () => RecipientOutcome,
  inMemoryMaxBytes?: number,
  metrics?: Metrics,
) {
  const sent: Buffer[] = [];
  const delivery = createDelivery({
    spool,
    target,
    retry: { minBackoffMs: 50, maxBackoffMs: 50, maxQueueLifetimeMs: 3_600_000 },
    log: silentLogger,
    smartHostHeader: "X-Moat-Relayed: tenant-1",
    ...(inMemoryMaxBytes === undefined ? {} : { inMemoryMaxBytes }),
    ...(metrics ? { metrics } : {}),
    attempt: async (_target, env, open) => {
      sent.push(await buffer(open()));
      const result = outcome();
      return { outcomes: new Map(env.rcptTo.map((r) => [r, { outcome: result, response: `${result} by test` }])) };
    },
  });
  return { delivery, sent };
}

const accept = (spool: Spool) =>
  spool.accept(
    envelope,
    prelude,
    Readable.from([body]),
    () => false,
    undefined,
    async () => ({ to: "incoming", meta }),
  );

describe("delivery of a message the spool held in memory", () => {
  it("sends it without reading its file back, and reads the file when it is tried again", async () => {
    const { spool, reads } = await countingSpool();
    let outcome: RecipientOutcome = "temporary";
    const { delivery, sent } = recordingDelivery(spool, () => outcome);
    await delivery.start();
    const accepted = await accept(spool);
    expect(accepted.message).toBeDefined();
    delivery.enqueued(accepted.id, accepted.message);
    await waitUntil(() => sent.length === 1, "the first attempt");
    expect(reads()).toBe(0);
    // The loop guard and the verdict's headers on top of the message as it was accepted.
    expect(sent[0]?.toString()).toBe(
      `X-Moat-Relayed: tenant-1\r\nAuthentication-Results: gw.test; spf=pass\r\n${prelude.toString()}${body.toString()}`,
    );
    outcome = "delivered"; // deferred after the first attempt; the next one comes from deferred/
    await waitUntil(() => sent.length === 2, "the second attempt");
    expect(reads()).toBe(1);
    expect(sent[1]?.equals(sent[0] as Buffer)).toBe(true);
    for (let i = 0; i < 100 && (await spool.list("active")).length > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    await delivery.close();
    for (const state of ["incoming", "active", "deferred", "hold"] as const)
      expect(await spool.list(state)).toEqual([]);
  });

  it("reads the message from its file when the memory it may keep is spent", async () => {
    const { spool, reads } = await countingSpool();
    const { delivery, sent } = recordingDelivery(spool, () => "delivered", 10);
    await delivery.start();
    const accepted = await accept(spool);
    delivery.enqueued(accepted.id, accepted.message);
    await waitUntil(() => sent.length === 1, "the attempt");
    await delivery.close();
    expect(reads()).toBe(1);
    expect(sent[0]?.toString()).toContain(`${prelude.toString()}${body.toString()}`);
  });
});

describe("delivery metrics", () => {
  it("times each attempt and, per recipient delivered, the time since it arrived, deferrals included", async () => {
    const { spool } = await countingSpool();
    const metrics = createMetrics();
    let outcome: RecipientOutcome = "temporary";
    const { delivery, sent } = recordingDelivery(spool, () => outcome, undefined, metrics);
    await delivery.start();
    const arrived = Date.now();
    const accepted = await spool.accept(
      { ...envelope, receivedAt: new Date(arrived).toISOString() },
      prelude,
      Readable.from([body]),
      () => false,
      undefined,
      async () => ({ to: "incoming", meta }),
    );
    delivery.enqueued(accepted.id, accepted.message);
    await waitUntil(() => sent.length === 1, "the first attempt");
    outcome = "delivered";
    const delivered = () => /^moat_delivery_seconds_count\{stage="delivered"\} 1$/m.test(metrics.render({}));
    await waitUntil(delivered, "the retry, delivered");
    const waited = (Date.now() - arrived) / 1000;
    await delivery.close();

    const text = metrics.render({});
    expect(text).toContain("# TYPE moat_delivery_seconds histogram\n");
    expect(text).toMatch(/^moat_delivery_seconds_count\{stage="attempt"\} 2$/m);
    const inGateway = Number(/^moat_delivery_seconds_sum\{stage="delivered"\} (\S+)$/m.exec(text)?.[1]);
    // It waited out the 50 ms backoff after the first attempt, and no longer than the test did.
    expect(inGateway).toBeGreaterThanOrEqual(0.05);
    expect(inGateway).toBeLessThanOrEqual(waited);
    expect(text).toMatch(/^moat_delivery_seconds_bucket\{stage="delivered",le="0.025"\} 0$/m);
    expect(text).toMatch(/^moat_delivery_seconds_bucket\{stage="delivered",le="\+Inf"\} 1$/m);
    const attempts = Number(/^moat_delivery_seconds_sum\{stage="attempt"\} (\S+)$/m.exec(text)?.[1]);
    expect(attempts).toBeLessThan(inGateway);
  });
});
