/**
 * The verdict in a thread of its own (worker_threads), so the MIME parse, authentication and the
 * detectors run beside the SMTP sessions, the spool and delivery instead of between them: the
 * event loop that answers every session is not held up by a parse, and the verdict has a core
 * of its own (bench/peers.ts: throughput and accept latency).
 *
 * The thread (scan-thread.ts) builds the same scanner `moat scan` uses from the same
 * gatewayConfig. For each message it is told where the message arrives (the spool's tmp file)
 * and each chunk as it lands there (source.ts SourceFeed): the first 256 KB come with their
 * bytes, the rest it reads from the file itself, so a large message is not copied between
 * threads. A source without a feed (a message in memory) is sent whole.
 *
 * Impersonation needs the internal display names: they are sent to the thread when the
 * directory changes (a sync), not per message.
 *
 * If the thread dies (it should not; a bug, out of memory), the messages it was judging fail —
 * the scan stage answers 451, the sender retries — and the next message starts a new thread.
 * Closing the gateway stops the thread; the thread alone does not keep the process running.
 */
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import type { GatewayConfig } from "../config";
import { usableCpus } from "../usable-cpus";
import type { Logger } from "../log";
import type { BayesLabel, BayesStore } from "./bayes-store";
import type { Scanner, Verdict } from "./pipeline";
import type { FeedListener, MessageSource } from "./source";
import type { PeopleDirectory } from "./types";
import { perTurn } from "./turn-batches";

type Person = ReturnType<PeopleDirectory["people"]>[number];

/** From this thread to the scan thread (in batches: each post is an array of these, in order). */
export type ToScanThread =
  | {
      readonly t: "scan";
      readonly id: number;
      readonly input: Omit<Parameters<Scanner["scan"]>[0], "source" | "directory">;
      /** The file the message arrives in; undefined: every chunk comes with its bytes. */
      readonly file?: { readonly path: string; readonly offset: number; readonly memoryLimit: number };
      readonly withDirectory: boolean;
    }
  | { readonly t: "chunk"; readonly id: number; readonly bytes: Uint8Array }
  | { readonly t: "inFile"; readonly id: number; readonly length: number }
  | { readonly t: "end"; readonly id: number }
  | { readonly t: "fail"; readonly id: number; readonly message: string }
  | { readonly t: "people"; readonly people: readonly Person[] }
  | { readonly t: "learn"; readonly id: number; readonly bytes: Uint8Array; readonly label: BayesLabel };

/** From the scan thread back (in batches, as the other way). */
export type FromScanThread =
  | { readonly t: "verdict"; readonly id: number; readonly verdict: Verdict }
  | { readonly t: "learned"; readonly id: number; readonly outcome: LearnOutcome }
  | { readonly t: "error"; readonly id: number; readonly message: string };

export type LearnOutcome = "learned" | "unchanged" | "moved";

/** The verdict as the gateway runs it, in its own thread or in the gateway's. */
export interface GatewayScanner extends Scanner {
  /** Bayes learns the message (bayes.ts learnMessage) where the scanner's parser is. */
  learn(raw: Buffer, label: BayesLabel): Promise<LearnOutcome>;
  /**
   * The kernel's id of the verdict's own thread, once it has started (Linux); undefined in the
   * gateway's thread, before the start or where there is no such id. loopCpu leaves it, like the
   * event loop, on every CPU (loop-cpu.ts).
   */
  osThreadId(): number | undefined;
  /** Stops the thread, if there is one; scans under way fail. */
  close(): Promise<void>;
}

/**
 * Where `filters.scanThread` puts the verdict on this machine, and why (logged at start-up).
 * "auto" gives it a thread of its own when the process can keep two CPUs busy: with one, the
 * thread would take turns with the event loop on it and only add the crossings between them.
 */
export function verdictPlacement(
  setting: GatewayConfig["filters"]["scanThread"],
  cpus: () => number = usableCpus,
): { readonly ownThread: boolean; readonly why: string } {
  if (setting !== "auto") return { ownThread: setting, why: `filters.scanThread is ${setting}` };
  const usable = cpus();
  return {
    ownThread: usable >= 2,
    why: `filters.scanThread is auto and ${usable} CPU${usable === 1 ? " is" : "s are"} usable`,
  };
}

/**
 * `filters.scanThread`: in a thread of its own, or in this one. The detectors' modules are
 * loaded here only in the second case, so with the thread the gateway's thread does not hold
 * them twice.
 */
export async function createGatewayScanner(
  config: GatewayConfig,
  bayes: BayesStore | undefined,
  log: Logger,
  cpus: () => number = usableCpus,
): Promise<GatewayScanner> {
  const { ownThread, why } = verdictPlacement(config.filters.scanThread, cpus);
  log.info(ownThread ? "the verdict runs in a thread of its own" : "the verdict runs in the gateway's thread", {
    why,
  });
  if (ownThread) return createThreadScanner(config, log);
  const [{ createScannerFromConfig }, { learnMessage }] = await Promise.all([
    import("./index.js"),
    import("./bayes.js"),
  ]);
  const scanner = createScannerFromConfig(config, bayes ? { bayes } : {});
  return {
    scan: (input) => scanner.scan(input),
    learn: (raw, label) => (bayes ? learnMessage(bayes, raw, label) : Promise.reject(new Error("Bayes is off"))),
    osThreadId: () => undefined,
    close: async () => undefined,
  };
}

/**
 * The thread's young generation: 12 MB, a 4 MB semi-space (V8 gives a thread 48 MB in all).
 * Chosen while V8 still pretenured the MIME parse's objects (v8-tuning.ts), when every young
 * collection kept every message's text since the last one and its pause grew with the young
 * generation: in the gateway at 200 msgs/s of the mix the verdict's p99 fell from a median of
 * 29.4 to 23.8 ms over nine alternating rounds (the client's from 73.3 to 48.3), as fast at full
 * speed, 30 MB less at the peak. With pretenuring off, three rounds could not tell 12 from 48 MB
 * in p99 or rate on this VM, and 12 MB held 37–68 MB less at the peak: kept (bench/RESULTS.md,
 * the AJ session).
 */
export const VERDICT_THREAD_YOUNG_GENERATION_MB = 12;

// Compiled (`npm run build`), the thread loads its JavaScript; run by tsx, a boot file registers tsx first.
const BOOT = __filename.endsWith(".js") ? join(__dirname, "scan-thread.js") : join(__dirname, "scan-thread.cjs");

/** @param entry the thread's entry file (tests give one that can be made to fail) */
export function createThreadScanner(config: GatewayConfig, log: Logger, entry = BOOT): GatewayScanner {
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 1;
  let peopleSent: PeopleDirectory | undefined;
  /** Where the running thread writes its kernel thread id when it starts (0 until then). */
  let osThreadIdCell: Int32Array<SharedArrayBuffer> | undefined;
  const pending = new Map<number, { resolve(answer: Verdict | LearnOutcome): void; reject(error: Error): void }>();

  const failAll = (error: Error) => {
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  };

  const start = (): Worker => {
    // execArgv [] so the thread does not inherit the parent's loader flags (tsx, vitest's):
    // scan-thread.cjs registers tsx itself.
    osThreadIdCell = new Int32Array(new SharedArrayBuffer(4));
    const thread = new Worker(entry, {
      workerData: { config, osThreadIdCell },
      execArgv: [],
      resourceLimits: { maxYoungGenerationSizeMb: VERDICT_THREAD_YOUNG_GENERATION_MB },
    });
    // A thread that died meanwhile has failed its messages already (gone): posting to it is a no-op.
    senders.set(
      thread,
      perTurn<ToScanThread>((items, transfer) => thread.postMessage(items, transfer)),
    );
    // The listeners keep the gateway running, not the thread: a start that fails after this
    // (a bad certificate, a port in use) still ends the process.
    thread.unref();
    thread.on("message", (answers: readonly FromScanThread[]) => {
      for (const message of answers) {
        const waiter = pending.get(message.id);
        if (!waiter) continue; // the scan stage gave up on it (timeout)
        pending.delete(message.id);
        if (message.t === "error") waiter.reject(new Error(message.message));
        else waiter.resolve(message.t === "verdict" ? message.verdict : message.outcome);
      }
    });
    const gone = (error: Error) => {
      if (worker !== thread) return;
      worker = undefined;
      peopleSent = undefined;
      if (!closed) log.error("scan thread stopped", { error: error.message });
      failAll(error);
    };
    thread.on("error", (error) => gone(new Error(`scan thread failed: ${error.message}`)));
    thread.on("exit", (code) => gone(new Error(`scan thread exited (code ${code})`)));
    return thread;
  };

  /** Each thread's sender: what goes to it in one event-loop turn goes as one batch (turn-batches.ts). */
  const senders = new WeakMap<Worker, (message: ToScanThread, transfer?: readonly ArrayBuffer[]) => void>();
  const post = (thread: Worker, message: ToScanThread, transfer?: ArrayBuffer[]) =>
    senders.get(thread)?.(message, transfer);

  /** Forwards the message to the thread as it arrives; stops once `settled()`. */
  const feed = (thread: Worker, id: number, source: MessageSource, settled: () => boolean) => {
    const listener: FeedListener = {
      appended(chunk) {
        if (settled()) return;
        // A copy of exactly these bytes (a Buffer may be a view of a larger pool), handed over.
        const bytes = new Uint8Array(chunk);
        post(thread, { t: "chunk", id, bytes }, [bytes.buffer]);
      },
      appendedInFile: (length) => settled() || post(thread, { t: "inFile", id, length }),
      finish: () => settled() || post(thread, { t: "end", id }),
      fail: (error) => settled() || post(thread, { t: "fail", id, message: error.message }),
    };
    if (source.feed) return source.feed.follow(listener);
    const reader = source.open();
    reader.on("data", (chunk: Buffer) => listener.appended(chunk));
    reader.on("end", () => listener.finish());
    reader.on("error", (error) => listener.fail(error));
  };

  // Started now, not with the first message: its start-up (about a second) is the gateway's,
  // and its memory is counted from the start.
  worker = start();

  /** What the thread answers to request `id`. */
  const answer = <T extends Verdict | LearnOutcome>(id: number) =>
    new Promise<T>((resolve, reject) => pending.set(id, { resolve: (value) => resolve(value as T), reject }));

  return {
    osThreadId: () => (worker && osThreadIdCell ? Atomics.load(osThreadIdCell, 0) || undefined : undefined),
    learn(raw, label) {
      if (closed) return Promise.reject(new Error("the scanner is closed"));
      const thread = (worker ??= start());
      const id = nextId++;
      const learned = answer<LearnOutcome>(id);
      const bytes = new Uint8Array(raw);
      post(thread, { t: "learn", id, bytes, label }, [bytes.buffer]);
      return learned;
    },
    scan(input) {
      if (closed) return Promise.reject(new Error("the scanner is closed"));
      const thread = (worker ??= start());
      const { source, directory, ...rest } = input;
      if (directory && directory !== peopleSent) {
        const people = directory.people().map((p) => ({ primary: p.primary, displayName: p.displayName }));
        post(thread, { t: "people", people });
        peopleSent = directory;
      }
      const id = nextId++;
      let settled = false;
      const verdict = answer<Verdict>(id).finally(() => (settled = true));
      const file = source.feed
        ? { path: source.feed.path, offset: source.feed.offset, memoryLimit: source.feed.memoryLimit }
        : undefined;
      post(thread, { t: "scan", id, input: rest, ...(file ? { file } : {}), withDirectory: Boolean(directory) });
      feed(thread, id, source, () => settled);
      return verdict;
    },
    async close() {
      closed = true;
      const thread = worker;
      worker = undefined;
      failAll(new Error("the scanner is closed"));
      await thread?.terminate();
    },
  };
}
