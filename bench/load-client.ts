/**
 * The benchmarks' Node load client (beside Postfix's smtp-source): persistent SMTP sessions or
 * a connection per message, optionally over STARTTLS, sending 10 KB messages of a fixed mix
 * (message-mix.ts: text, HTML, an attachment, DKIM-signed) either as fast as the system takes
 * them (closed loop) or at a fixed rate (open loop, for latency at a given load), and a way to
 * hold many idle sessions open (memory per session).
 *
 * Latency is measured the way a sending MTA sees it on a persistent session: from the moment a
 * message was due to be sent (its slot in the schedule, so a backlog counts; not when a
 * session got round to it) to the 250 after its data. For the slowest 1% it also says where the
 * time went (waiting for a free session, then each reply), which tells a stalled system (every
 * reply slow) from one slow stage (only the reply after the data).
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { DELAY_RESOLUTION_MS, lateMs } from "../gateway/event-loop";
import { type RawSession, openRawSession } from "../test/helpers/raw-smtp";
import { type Episode, episodes, monotonicMs } from "./latency-tail";
import { messageMix } from "./message-mix";

export interface LoadOptions {
  readonly port: number;
  readonly messages: number;
  readonly sessions: number;
  /** Messages per second; undefined: as fast as the system answers. */
  readonly rate?: number;
  readonly tls?: boolean;
  /**
   * A new connection for every message (greeting, EHLO, STARTTLS when `tls`, the message,
   * QUIT), as most sending MTAs connect: with `tls`, a full TLS handshake a message.
   */
  readonly perMessage?: boolean;
  readonly size: number;
  readonly from: string;
  readonly to: string;
}

/** Where a message's time went, in ms: from when it was due to its MAIL, then each reply. */
export interface Phases {
  /** With a connection per message, the connection, greeting, EHLO and STARTTLS included. */
  readonly waited: number;
  readonly mail: number;
  readonly rcpt: number;
  readonly data: number;
  /** From the message's first byte to the 250 after it. */
  readonly body: number;
}

export interface LoadResult {
  readonly sent: number;
  readonly failed: number;
  readonly seconds: number;
  readonly rate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** The slowest 1% of messages (at least one): the mean of each phase. */
  readonly slowest: Phases;
  /** The same messages as episodes: those slow at the same moment together (latency-tail.ts). */
  readonly slowestEpisodes: readonly Episode[];
  /**
   * How late this client's own event loop ran a timer due every 10 ms during the run (p99 and
   * max, ms): a reply the system sent while the client was busy waited that long to be read,
   * and is counted in the system's latency.
   */
  readonly clientLateMs: { readonly p99: number; readonly max: number };
  readonly firstError?: string;
}

async function open(options: LoadOptions): Promise<RawSession> {
  const session = await openRawSession(options.port, 30_000);
  const greeting = await session.reply();
  if (!greeting.startsWith("220")) throw new Error(`greeting: ${greeting}`);
  if (!(await session.send("EHLO load.bench.test")).startsWith("250")) throw new Error("EHLO refused");
  if (options.tls) {
    await session.startTls();
    if (!(await session.send("EHLO load.bench.test")).startsWith("250")) throw new Error("EHLO after TLS refused");
  }
  return session;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const phases: (Phases & { total: number; start: number; end: number })[] = [];
  const monotonic = monotonicMs() - performance.now(); // performance.now() to CLOCK_MONOTONIC
  let next = 0;
  let failed = 0;
  let firstError: string | undefined;
  const bodies = await messageMix(options.size, options.to);
  const persistent = options.perMessage
    ? []
    : await Promise.all(Array.from({ length: options.sessions }, () => open(options)));
  const started = performance.now();
  const loop = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
  loop.enable();
  await Promise.all(
    Array.from({ length: options.sessions }, async (_, worker) => {
      while (next < options.messages) {
        const n = next++;
        const due = options.rate ? started + (n * 1000) / options.rate : performance.now();
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        let session = persistent[worker];
        try {
          session ??= await open(options);
          const sending = performance.now();
          const mail = await session.send(`MAIL FROM:<${options.from}>`);
          const mailed = performance.now();
          const rcpt = await session.send(`RCPT TO:<${options.to}>`);
          const rcpted = performance.now();
          const data = await session.send("DATA");
          const dataed = performance.now();
          if (!mail.startsWith("250") || !rcpt.startsWith("250") || !data.startsWith("354"))
            throw new Error(`refused: ${mail} / ${rcpt} / ${data}`);
          const done = await session.send(bodies[n % bodies.length] as Buffer);
          if (!done.startsWith("250")) throw new Error(`after data: ${done}`);
          const finished = performance.now();
          phases.push({
            waited: sending - due,
            mail: mailed - sending,
            rcpt: rcpted - mailed,
            data: dataed - rcpted,
            body: finished - dataed,
            total: finished - due,
            start: due + monotonic,
            end: finished + monotonic,
          });
        } catch (error) {
          failed++;
          firstError ??= (error as Error).message;
          if (!options.perMessage) await session?.send("RSET").catch(() => "");
        }
        if (options.perMessage && session) {
          await session.send("QUIT").catch(() => "");
          session.close();
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  loop.disable();
  const late = (ns: number) => (loop.count === 0 ? 0 : lateMs(ns));
  const clientLateMs = { p99: late(loop.percentile(99)), max: late(loop.max) };
  for (const session of persistent) {
    await session.send("QUIT").catch(() => "");
    session.close();
  }
  const latencies = phases.map((p) => p.total).sort((a, b) => a - b);
  const slowest = phases.sort((a, b) => b.total - a.total).slice(0, Math.max(1, Math.floor(phases.length / 100)));
  const mean = (key: keyof Phases) => slowest.reduce((sum, p) => sum + p[key], 0) / Math.max(1, slowest.length);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return {
    sent: latencies.length,
    failed,
    seconds,
    rate: latencies.length / seconds,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    slowest: { waited: mean("waited"), mail: mean("mail"), rcpt: mean("rcpt"), data: mean("data"), body: mean("body") },
    slowestEpisodes: episodes(slowest),
    clientLateMs,
    ...(firstError ? { firstError } : {}),
  };
}

/**
 * Opens `count` sessions and leaves each mid-transaction (EHLO, MAIL FROM, RCPT TO done), the
 * state a slow sender keeps a server in. Returns how many got that far and a way to end them.
 */
export async function holdSessions(
  options: Pick<LoadOptions, "port" | "from" | "to">,
  count: number,
): Promise<{ open: number; errors: string[]; close(): void }> {
  const held: RawSession[] = [];
  const errors: string[] = [];
  const batch = 50;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, async () => {
        try {
          const session = await open({ ...options, messages: 0, sessions: 1, size: 0 });
          held.push(session);
          await session.send(`MAIL FROM:<${options.from}>`);
          await session.send(`RCPT TO:<${options.to}>`);
        } catch (error) {
          errors.push((error as Error).message);
        }
      }),
    );
  }
  return {
    open: held.length,
    errors,
    close: () => {
      for (const session of held) session.close();
    },
  };
}
