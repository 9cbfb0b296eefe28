/**
 * Moves queued mail on: picks messages from incoming/ (and deferred/ when due) into active/,
 * runs one attempt (smart-host recipients together, internet recipients per domain), then:
 * recipients that failed for good (or past the queue lifetime) get a DSN to the sender,
 * queued before anything is let go; recipients still pending are deferred with Postfix's
 * backoff (only they stay); a message done for everyone is removed. A failure that cannot
 * be bounced (null sender) is held for the admin, never deleted.
 *
 * Backoff as in Postfix's qmgr: the next attempt is after the message's age, clamped to
 * [minBackoffMs, maxBackoffMs] — doubling in effect, without per-message state.
 *
 * Bounded concurrency; close() stops taking work and waits for attempts under way.
 */
import type { Logger } from "../log";
import { Readable } from "node:stream";
import { bufferStream } from "../queue/queue-file";
import type { QueuedMessage, Spool } from "../queue/spool";
import type { Metrics } from "../metrics";
import type { TrackerStore } from "../store/tracker";
import type { Bouncer } from "./bounce";
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
  /** Bytes of messages handed over in memory (enqueued) kept until their first attempt. */
  readonly inMemoryMaxBytes?: number;
  /** Delivery to the smart host (a connection pool); defaults to a connection per attempt. */
  readonly attempt?: typeof attemptDelivery;
  /** Delivery to internet domains (outbound relay, bounces); without it such recipients wait. */
  readonly remote?: RemoteDelivery;
  /** Sends DSNs for permanent failures; without it such messages are held. */
  readonly bouncer?: Bouncer;
  /** Records each attempt and the downstream reply (failures logged, never fatal). */
  readonly tracker?: TrackerStore;
  readonly metrics?: Metrics;
  /**
   * A header line prepended to what goes to the smart host: the loop guard the Exchange
   * outbound rule exempts (`X-Moat-Relayed: <tenant id>`), so mail the gateway puts into the
   * tenant is never routed back out through it.
   */
  readonly smartHostHeader?: string;
}

export interface Delivery {
  /** Scans the queue and starts due work; call after start-up recovery. */
  start(): Promise<void>;
  /**
   * A message just landed in incoming/; `message`, its bytes as they are in the file, when the
   * spool still has them in memory (its first attempt then reads nothing back).
   */
  enqueued(id: string, message?: QueuedMessage): void;
  close(): Promise<void>;
}

const DEFAULT_CONCURRENCY = 8;
/**
 * Messages handed over in memory, waiting for their first attempt, at most this many bytes; past
 * it (a slow smart host, a backlog) a message is read back from its file when its turn comes.
 */
const IN_MEMORY_MAX_BYTES = 32 * 1024 * 1024;

async function* prepend(first: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  yield first;
  for await (const chunk of rest) yield chunk as Buffer;
}

/**
 * The message with header `lines` (each ending in CRLF) in front. A message in memory goes as one
 * buffer, so the SMTP client sends it in one write instead of one per piece.
 */
function withHeaders(message: QueuedMessage, lines: string): () => Readable {
  if (lines === "") return message.openMessage;
  const head = Buffer.from(lines, "utf8");
  if (message.whole) {
    const all = Buffer.concat([head, message.whole]);
    return () => bufferStream(all);
  }
  return () => Readable.from(prepend(head, message.openMessage()));
}
/** How often deferred/ is rescanned even when no timer is due (clock changes, admin moves). */
const DEFERRED_SCAN_INTERVAL_MS = 60 * 1000;

export function createDelivery(options: DeliveryOptions): Delivery {
  const { spool, target, retry, log } = options;
  const now = options.now ?? Date.now;
  const attempt = options.attempt ?? attemptDelivery;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const inMemoryMaxBytes = options.inMemoryMaxBytes ?? IN_MEMORY_MAX_BYTES;

  const waiting: { id: string; from: "incoming" | "deferred" }[] = [];
  const known = new Set<string>();
  /** Messages handed over in memory (enqueued), until their first attempt takes them. */
  const inMemory = new Map<string, QueuedMessage>();
  let inMemoryBytes = 0;
  const takeInMemory = (id: string): QueuedMessage | undefined => {
    const message = inMemory.get(id);
    if (message) {
      inMemory.delete(id);
      inMemoryBytes -= message.bytes;
    }
    return message;
  };
  const running = new Set<Promise<void>>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  const pump = () => {
    while (!closed && running.size < concurrency && waiting.length > 0) {
      const next = waiting.shift();
      if (!next) break;
      const task = deliverOne(next.id, next.from)
        .catch((error: Error) =>
          log.error("queue move failed; the message stays where it is until the next scan or restart", {
            id: next.id,
            error: error.message,
          }),
        )
        .finally(() => {
          running.delete(task);
          known.delete(next.id);
          takeInMemory(next.id); // not attempted (a failed claim): read from the file next time
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
    await spool.claim(id, from);
    try {
      await deliverActive(id);
    } catch (error) {
      // Whatever went wrong (a bounce that could not be written, a tracker or disk error),
      // the message goes back to deferred/ for a later try instead of sitting in active/.
      log.error("delivery failed unexpectedly; message deferred", { id, error: (error as Error).message });
      await spool.defer(id, "active", now() + retry.minBackoffMs).catch(() => undefined);
    }
  }

  async function deliverActive(id: string): Promise<void> {
    let message = takeInMemory(id);
    try {
      message ??= await spool.read("active", id);
    } catch (error) {
      log.error("unreadable queue file set aside in corrupt/", { id, error: (error as Error).message });
      await spool.move(id, "active", "corrupt");
      return;
    }
    const { envelope } = message;
    // Headers the verdict added (Authentication-Results) go on top; the spooled bytes stay the original.
    const added = (message.meta?.headers ?? []).map((h) => `${h}\r\n`).join("");
    const started = performance.now();
    const result = await attemptAllRoutes(message, added);
    options.metrics?.observe("moat_delivery_seconds", { stage: "attempt" }, (performance.now() - started) / 1000);
    const pending: { rcpt: string; response: string }[] = [];
    const failed: { recipient: string; response: string }[] = [];
    const attemptedAt = now();
    /** Since the message arrived (its time in the gateway; NaN for a file without a valid receivedAt). */
    const age = attemptedAt - Date.parse(envelope.receivedAt);
    for (const rcpt of envelope.rcptTo) {
      const outcome = result.outcomes.get(rcpt) ?? { outcome: "temporary", response: "no outcome" };
      options.tracker
        ?.recordAttempt({
          messageId: id,
          at: attemptedAt,
          recipient: rcpt,
          outcome: outcome.outcome,
          response: outcome.response,
        })
        .catch((error: Error) => log.error("tracker write failed", { id, error: error.message }));
      options.metrics?.inc("moat_delivery_attempts_total", { outcome: outcome.outcome });
      const fields = { id, to: rcpt, reply: outcome.response };
      if (outcome.outcome === "delivered") {
        log.info("delivered", fields);
        if (Number.isFinite(age))
          options.metrics?.observe("moat_delivery_seconds", { stage: "delivered" }, Math.max(0, age) / 1000);
      } else if (outcome.outcome === "permanent") {
        log.warn("delivery refused permanently", fields);
        failed.push({ recipient: rcpt, response: outcome.response });
      } else {
        log.warn("delivery deferred", fields);
        pending.push({ rcpt, response: outcome.response });
      }
    }
    const givingUp = pending.length > 0 && age >= retry.maxQueueLifetimeMs;
    if (givingUp) {
      const days = (age / 86_400_000).toFixed(1);
      for (const p of pending.splice(0))
        failed.push({
          recipient: p.rcpt,
          response: `4.4.7 delivery time expired after ${days} days; last reply: ${p.response}`,
        });
    }
    // Bounce what failed for good, durably, before the original may go.
    const bounced = failed.length > 0 && options.bouncer ? await options.bouncer.bounce(message, failed) : undefined;
    if (bounced) {
      options.metrics?.inc("moat_bounces_total");
      schedule(bounced, "incoming");
    }
    if (pending.length > 0) {
      const backoff = Math.min(Math.max(age, retry.minBackoffMs), retry.maxBackoffMs);
      const narrowed = pending.length < envelope.rcptTo.length ? pending.map((p) => p.rcpt) : undefined;
      await spool.defer(id, "active", now() + backoff, narrowed);
    } else if (failed.length === 0 || bounced) {
      await spool.remove(id, "active", { sync: false });
    } else {
      // A bounce that cannot be bounced (null sender), or no bouncer: keep it for the admin.
      log.error("message held: undeliverable", { id, failed: failed.map((f) => f.recipient).join(","), ageMs: age });
      await spool.move(id, "active", "hold");
    }
  }

  /** Smart-host recipients in one transaction, internet recipients per domain. */
  async function attemptAllRoutes(message: QueuedMessage, added: string): Promise<AttemptResult> {
    const { envelope } = message;
    const internet = new Set(envelope.outboundRcpts ?? []);
    const outcomes = new Map<string, { outcome: RecipientOutcome; response: string }>();
    const merge = (result: AttemptResult) => result.outcomes.forEach((value, key) => outcomes.set(key, value));
    const viaSmartHost = envelope.rcptTo.filter((r) => !internet.has(r));
    const header = options.smartHostHeader;
    if (viaSmartHost.length > 0) {
      const stamped = withHeaders(message, header ? `${header}\r\n${added}` : added);
      merge(await attempt(target, { mailFrom: envelope.mailFrom, rcptTo: viaSmartHost }, stamped));
    }
    const byDomain = new Map<string, string[]>();
    for (const rcpt of envelope.rcptTo.filter((r) => internet.has(r))) {
      const domain = rcpt.slice(rcpt.lastIndexOf("@") + 1).toLowerCase();
      byDomain.set(domain, [...(byDomain.get(domain) ?? []), rcpt]);
    }
    if (byDomain.size === 0) return { outcomes };
    // Only now: for a message held in memory this is a copy of the whole message.
    const open = withHeaders(message, added);
    for (const [domain, rcptTo] of byDomain) {
      if (options.remote) merge(await options.remote(domain, { mailFrom: envelope.mailFrom, rcptTo }, open));
      else
        rcptTo.forEach((r) =>
          outcomes.set(r, { outcome: "temporary", response: "internet delivery is not configured" }),
        );
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
    enqueued(id, message) {
      if (closed || known.has(id)) return;
      if (message && inMemoryBytes + message.bytes <= inMemoryMaxBytes) {
        inMemory.set(id, message);
        inMemoryBytes += message.bytes;
      }
      schedule(id, "incoming");
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      waiting.length = 0;
      inMemory.clear();
      inMemoryBytes = 0;
      await Promise.allSettled([...running]);
    },
  };
}
