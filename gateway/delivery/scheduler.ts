/**
 * Moves queued mail to the smart host: picks messages from incoming/ (and deferred/ when
 * due) into active/, runs one attempt, then removes the file (all delivered), defers it with
 * Postfix's backoff (any temporary failure; only the recipients still pending stay), or
 * holds it (permanent failures, or past the queue lifetime) so nothing is ever lost.
 *
 * Backoff as in Postfix's qmgr: the next attempt is after the message's age, clamped to
 * [minBackoffMs, maxBackoffMs] — doubling in effect, without per-message state.
 *
 * Bounded concurrency; close() stops taking work and waits for attempts under way.
 */
import type { Logger } from "../log";
import type { Readable } from "node:stream";
import type { Envelope, Spool } from "../queue/spool";
import type { RemoteDelivery } from "./remote";
import { type AttemptResult, type RecipientOutcome, type SmartHostTarget, attemptDelivery } from "./smtp-client";

export interface DeliveryOptions {
  readonly spool: Spool;
  readonly target: SmartHostTarget;
  readonly retry: { readonly minBackoffMs: number; readonly maxBackoffMs: number; readonly maxQueueLifetimeMs: number };
  readonly log: Logger;
  readonly now?: () => number;
  /** Attempts in flight at once. */
  readonly concurrency?: number;
  /** Injected in tests; defaults to a real SMTP attempt. */
  readonly attempt?: typeof attemptDelivery;
  /** Delivery to internet domains (outbound relay, bounces); without it such recipients wait. */
  readonly remote?: RemoteDelivery;
}

export interface Delivery {
  /** Scans the queue and starts due work; call after start-up recovery. */
  start(): Promise<void>;
  /** A message just landed in incoming/. */
  enqueued(id: string): void;
  close(): Promise<void>;
}

const DEFAULT_CONCURRENCY = 8;
/** How often deferred/ is rescanned even when no timer is due (clock changes, admin moves). */
const DEFERRED_SCAN_INTERVAL_MS = 60 * 1000;

export function createDelivery(options: DeliveryOptions): Delivery {
  const { spool, target, retry, log } = options;
  const now = options.now ?? Date.now;
  const attempt = options.attempt ?? attemptDelivery;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;

  const waiting: { id: string; from: "incoming" | "deferred" }[] = [];
  const known = new Set<string>();
  const running = new Set<Promise<void>>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const pump = () => {
    while (!closed && running.size < concurrency && waiting.length > 0) {
      const next = waiting.shift();
      if (!next) break;
      const task = deliverOne(next.id, next.from)
        .catch((error: Error) => log.error("delivery failed unexpectedly; message stays queued", { id: next.id, error: error.message }))
        .finally(() => {
          running.delete(task);
          known.delete(next.id);
          pump();
        });
      running.add(task);
    }
  };

  const schedule = (id: string, from: "incoming" | "deferred") => {
    if (closed || known.has(id)) return;
    known.add(id);
    waiting.push({ id, from });
    pump();
  };

  async function deliverOne(id: string, from: "incoming" | "deferred"): Promise<void> {
    await spool.move(id, from, "active");
    let message;
    try {
      message = await spool.read("active", id);
    } catch (error) {
      log.error("unreadable queue file set aside in corrupt/", { id, error: (error as Error).message });
      await spool.move(id, "active", "corrupt");
      return;
    }
    const { envelope } = message;
    const result = await attemptAllRoutes(envelope, message.openMessage);
    const pending: string[] = [];
    const failed: string[] = [];
    for (const rcpt of envelope.rcptTo) {
      const outcome = result.outcomes.get(rcpt) ?? { outcome: "temporary", response: "no outcome" };
      const fields = { id, to: rcpt, relay: `${target.host}:${target.port}`, reply: outcome.response };
      if (outcome.outcome === "delivered") log.info("delivered", fields);
      else if (outcome.outcome === "permanent") {
        log.warn("delivery refused permanently", fields);
        failed.push(rcpt);
      } else {
        log.warn("delivery deferred", fields);
        pending.push(rcpt);
      }
    }
    const age = now() - Date.parse(envelope.receivedAt);
    if (pending.length === 0 && failed.length === 0) {
      await spool.remove(id, "active");
    } else if (pending.length > 0 && age < retry.maxQueueLifetimeMs) {
      const backoff = Math.min(Math.max(age, retry.minBackoffMs), retry.maxBackoffMs);
      if (failed.length > 0) {
        // No DSN bounce yet (the bounce stage is still to come): the refusal is in the log.
        log.warn("recipients refused permanently; no bounce is sent", { id, failed: failed.join(",") });
      }
      const narrowed = pending.length < envelope.rcptTo.length ? pending : undefined;
      await spool.defer(id, "active", now() + backoff, narrowed);
    } else {
      // Permanent failure for everyone left, or given up: keep the message where an admin
      // can see it. DSN bounces are sent by the bounce stage once it exists.
      log.error("message held: undeliverable", { id, failed: [...failed, ...pending].join(","), ageMs: age });
      await spool.move(id, "active", "hold");
    }
  }

  /** Smart-host recipients in one transaction, internet recipients per domain. */
  async function attemptAllRoutes(envelope: Envelope, open: () => Readable): Promise<AttemptResult> {
    const internet = new Set(envelope.outboundRcpts ?? []);
    const outcomes = new Map<string, { outcome: RecipientOutcome; response: string }>();
    const merge = (result: AttemptResult) => result.outcomes.forEach((value, key) => outcomes.set(key, value));
    const viaSmartHost = envelope.rcptTo.filter((r) => !internet.has(r));
    if (viaSmartHost.length > 0) merge(await attempt(target, { mailFrom: envelope.mailFrom, rcptTo: viaSmartHost }, open));
    const byDomain = new Map<string, string[]>();
    for (const rcpt of envelope.rcptTo.filter((r) => internet.has(r))) {
      const domain = rcpt.slice(rcpt.lastIndexOf("@") + 1).toLowerCase();
      byDomain.set(domain, [...(byDomain.get(domain) ?? []), rcpt]);
    }
    for (const [domain, rcptTo] of byDomain) {
      if (options.remote) merge(await options.remote(domain, { mailFrom: envelope.mailFrom, rcptTo }, open));
      else rcptTo.forEach((r) => outcomes.set(r, { outcome: "temporary", response: "internet delivery is not configured" }));
    }
    return { outcomes };
  }

  const scanDeferred = async () => {
    if (closed) return;
    const due = now();
    for (const id of await spool.list("deferred")) {
      const at = await spool.dueAt(id).catch(() => Number.POSITIVE_INFINITY);
      if (at <= due) schedule(id, "deferred");
    }
  };

  const tick = () => {
    scanDeferred()
      .catch((error: Error) => log.error("scanning deferred/ failed", { error: error.message }))
      .finally(() => {
        if (!closed) timer = setTimeout(tick, Math.min(DEFERRED_SCAN_INTERVAL_MS, retry.minBackoffMs));
      });
  };

  return {
    async start() {
      for (const id of await spool.list("incoming")) schedule(id, "incoming");
      tick();
    },
    enqueued(id) {
      schedule(id, "incoming");
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      waiting.length = 0;
      await Promise.allSettled([...running]);
    },
  };
}
