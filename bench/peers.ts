/**
 * Benchmark (not a test): Moat side by side with its peers, in one run on this machine
 * (issue #8). Load: Postfix's `smtp-source` (20 sessions unless BENCH_SESSIONS says, 10 KB
 * messages, one recipient), once with a new connection per message and once with persistent
 * sessions (`-d`). Every system relays to the same sink, Postfix's `smtp-sink`; a run ends
 * when the sink has every message. Systems:
 *
 *   postfix       Postfix as a plain relay (its queue, fsync on, no filter), from Debian
 *   haraka        Haraka from npm with smtp_forward (no local queue), one process; and with its
 *                 own disk queue and outbound delivery (the ratios are to smtp_forward)
 *   moat-full     `moat serve`: spool (fsync) + the verdict without external engines + delivery,
 *                 the verdict in the gateway's thread (filters.scanThread=false; what "auto", the
 *                 default, chooses where one CPU is usable, as in the Azure hosting)
 *   moat-thread   moat-full with filters.scanThread=true (the verdict in a thread of its own;
 *                 what "auto" chooses from two usable CPUs, as on the development machine)
 *   moat-nofilter the same with filters.enabled=false
 *   moat-1cpu     moat-full held to one CPU's time by a cgroup quota, scanThread and loopCpu
 *                 "auto", as the Azure hosting's container (`moat:gateway.cpu` 1) runs it; only
 *                 when BENCH_SYSTEMS names it
 *
 * Then, with the Node load client (bench/load-client.ts): throughput on persistent sessions in
 * plain SMTP and over STARTTLS, and over STARTTLS with a connection (and a full handshake) per
 * message, as most sending MTAs connect (every system gets the same self-signed certificate);
 * accept latency p50/p99 at half of the system's own maximum with the mix (open loop: latency
 * counts from when a message was due; for the slowest 1%, where the time went; for Moat, its
 * own accept times by stage and its event loop's load from /metrics); and memory with 500
 * concurrent sessions held mid-transaction.
 *
 * Every system gets the same warm-up first (WARM_UP, after the held sessions, which are measured
 * on a fresh start), so every mode is measured warm.
 *
 * Reported: messages/s, CPU ms per message of the system's processes (from /proc) and of the
 * load's side (the load client, smtp-source, the sink, the DNS stub), how many of the machine's
 * cores were busy, how much of a core the system's busiest thread took (what held its rate) and
 * how long its threads waited for a CPU while ready to run (/proc's schedstat; threads that ended
 * during the run, as Postfix's smtpd processes do, are not counted), the same for its main thread
 * (the event loop of Moat and Haraka) with how long it ran each time, with smtp-source the CPU a
 * message of each kind of thread (the main one, and the others by the kernel's name for them: on
 * Node 24 Moat's verdict thread, V8's helpers, libuv's pool), peak RSS, and ratios to
 * Postfix and Haraka; last, issue #8's targets for Moat's full pipeline in this run (with the
 * verdict in the gateway's thread and, when measured, in its own), each met or missed and by how
 * much, and what twice Haraka's rate would keep busy of this machine at the CPU a message
 * measured (bench/targets.ts). Needs root (Postfix), Debian's postfix package and the npm
 * registry (Haraka is installed into a temporary directory).
 *
 *   tsx bench/peers.ts [MESSAGES]      (BENCH_SYSTEMS=postfix,haraka,haraka-queue,moat,moat-thread,moat-nofilter: a subset, or moat-1cpu;
 *                                       BENCH_SESSIONS=50: sessions at once instead of 20;
 *                                       BENCH_MOAT_LOOP_CPU=false: Moat's loopCpu off;
 *                                       BENCH_ROUNDS=3: every system three times, the targets on the median;
 *                                       BENCH_MOAT_NODE=/path/to/node: Moat on another Node.js, its native
 *                                       modules built for that one)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate } from "../test/helpers/tls";
import { verdictPlacement } from "../gateway/filters/thread-scanner";
import { acceptStagesBetween, eventLoopBetween, scrapeMoatMetrics } from "./moat-metrics";
import { startDnsStub } from "./dns-stub";
import { holdSessions, runLoad } from "./load-client";
import { type ModeFigures, type TargetInputs, targetVerdicts } from "./targets";
import {
  HARAKA,
  HARAKA_NODELAY,
  type Mode,
  type NodeMode,
  type Result,
  type SourceMode,
  nodeClientModes,
  report,
  smtpSourceModes,
} from "./peers-report";
import {
  HELD_SESSIONS,
  MOAT_VARIANTS,
  type Sink,
  type System,
  startHaraka,
  startMoat,
  startPostfix,
  sinkReaches,
  smtpSource,
  startSmtpSink,
} from "./peer-systems";
import { cpuByThread, runQueueWait, treeMemoryKb, usage } from "./proc-usage";

const MESSAGES = Number(process.argv[2] ?? 2000);
/**
 * Sessions at once, for smtp-source and the Node client (BENCH_SESSIONS; 20 unless set). With
 * 20, Haraka's smtp_forward is held by waiting on the sink (it forwards during the DATA); with
 * 50 or more it is held by its event loop, as Moat is.
 */
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20);
if (!Number.isInteger(SESSIONS) || SESSIONS < 1) throw new Error(`BENCH_SESSIONS must be a whole number of sessions`);
/**
 * Rounds (BENCH_ROUNDS; 1 unless set): every system measured again, every other round in
 * reverse order, and the targets judged on the median of the rounds' ratios.
 */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`BENCH_ROUNDS must be a whole number of rounds`);
const SIZE = 10240;
const FROM = "sender@outside.example";
const TO = "anna.berg@northwind.example";

/** Starts counting CPU for one load mode; the returned function ends it. */
function cpuWindow(system: System): (messages: number, seconds: number) => Omit<Mode, "rate"> {
  const before = usage(system.pid);
  return (messages, seconds) => {
    const after = usage(system.pid);
    const busiestMs = Math.max(
      0,
      ...[...after.threads].map(([tid, thread]) => thread.runMs - (before.threads.get(tid)?.runMs ?? 0)),
    );
    const [start, end] = [runQueueWait(before.threads, system.pid), runQueueWait(after.threads, system.pid)];
    const perMessage = (a: number, b: number) => Math.max(0, a - b) / Math.max(1, messages);
    return {
      main: {
        wakesPerMsg: perMessage(end.main.slices, start.main.slices),
        runPerMsg: perMessage(end.main.runMs, start.main.runMs),
        waitPerMsg: perMessage(end.main.waitMs, start.main.waitMs),
        occupied: (end.main.runMs - start.main.runMs + end.main.waitMs - start.main.waitMs) / 1000 / seconds,
      },
      wakesPerMsg: perMessage(end.slices, start.slices),
      waitPerMsg: perMessage(end.waitMs, start.waitMs),
      byThread: cpuByThread(before.threads, after.threads, system.pid).map(({ name, threads, runMs }) => ({
        name,
        threads,
        perMsg: perMessage(runMs, 0),
      })),
      cpuPerMsg: perMessage(after.treeCpuMs, before.treeCpuMs),
      loadPerMsg: perMessage(after.loadCpuMs, before.loadCpuMs),
      busyCores: (after.machineBusyMs - before.machineBusyMs) / 1000 / seconds,
      busiestThread: busiestMs / 1000 / seconds,
    };
  };
}

/**
 * Messages every system gets, after its memory with held sessions is measured on a fresh start
 * and before anything else: smtp-source with a connection per message and with persistent
 * sessions, and the Node client's mix, plain and over STARTTLS. A system measured cold pays for
 * compiling its code (V8's JIT for Moat and Haraka, Postfix's processes starting) in whichever
 * mode comes first: over their first 2,000 messages Moat's CPU per message was about 1.2 ms
 * more than in the same mode warm, Haraka's 0.8-1.1 ms. A gateway in production has long been warm.
 */
const WARM_UP = { connections: 200, persistent: 500, mix: 500, tls: 100 } as const;

/** Where and what every load sends: SESSIONS at once, SIZE bytes, FROM and TO. */
const loadTo = (system: System) => ({ port: system.port, sessions: SESSIONS, size: SIZE, from: FROM, to: TO });
const smtpSourceTo = (system: System, messages: number, persistent: boolean) =>
  smtpSource(system.port, { ...loadTo(system), messages, persistent });

async function warmUp(system: System, sink: Sink): Promise<void> {
  const since = sink.count();
  for (const [messages, persistent] of [
    [WARM_UP.connections, false],
    [WARM_UP.persistent, true],
  ] as const) {
    const source = smtpSourceTo(system, messages, persistent);
    await new Promise((resolve) => source.once("exit", resolve));
  }
  const base = loadTo(system);
  const mix = await runLoad({ ...base, messages: WARM_UP.mix });
  const tls = await runLoad({ ...base, messages: WARM_UP.tls, tls: true });
  const total = WARM_UP.connections + WARM_UP.persistent + mix.sent + tls.sent;
  if (!(await sinkReaches(sink, since + total, 120_000)))
    throw new Error(`${system.name}: the warm-up's messages did not all arrive`);
}

/**
 * Peak memory under load is sampled this often, not at every 50 ms look at the sink: reading a
 * process's /proc/PID/smaps_rollup costs the bench CPU (counted on the load's side) and takes
 * the process's memory-map lock, which the system being measured needs for its own mappings.
 */
const RSS_SAMPLE_MS = 250;

async function measure(system: System, sink: Sink, persistent: boolean): Promise<SourceMode> {
  const start = sink.count();
  const cpu = cpuWindow(system);
  let peakKb = treeMemoryKb(system.pid).pss;
  let sampledAt = Date.now();
  const started = process.hrtime.bigint();
  const source = smtpSourceTo(system, MESSAGES, persistent);
  await sinkReaches(sink, start + MESSAGES, 180_000, {
    each: () => {
      if (Date.now() - sampledAt < RSS_SAMPLE_MS) return;
      sampledAt = Date.now();
      peakKb = Math.max(peakKb, treeMemoryKb(system.pid).pss);
    },
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  source.kill("SIGKILL");
  const delivered = sink.count() - start;
  return { rate: delivered / seconds, ...cpu(delivered, seconds), rssMb: peakKb / 1024 };
}

/**
 * A fresh system's memory once it has finished starting: its RSS sampled every 250 ms until two
 * samples in a row are within 0.5 MB (at most 10 s). Moat listens before the verdict's thread has
 * loaded its modules; read at once, that load (about 20 MB) was reported as the held sessions'.
 */
async function settledMemoryKb(pid: number): Promise<ReturnType<typeof treeMemoryKb>> {
  let last = treeMemoryKb(pid);
  for (let waited = 0; waited < 10_000; waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    const now = treeMemoryKb(pid);
    if (Math.abs(now.rss - last.rss) < 512) return now;
    last = now;
  }
  return last;
}

/** Memory with HELD_SESSIONS sessions held mid-transaction, on a freshly started system. */
async function measureSessions(system: System): Promise<Result["sessions"]> {
  const idle = await settledMemoryKb(system.pid);
  const held = await holdSessions({ port: system.port, from: FROM, to: TO }, HELD_SESSIONS);
  await new Promise((r) => setTimeout(r, 1000));
  const holding = treeMemoryKb(system.pid);
  held.close();
  await new Promise((r) => setTimeout(r, 1000));
  return {
    open: held.open,
    errors: held.errors.length,
    idlePssMb: idle.pss / 1024,
    heldPssMb: holding.pss / 1024,
    heldRssMb: holding.rss / 1024,
  };
}

/**
 * The Node client's figures for one system: plain and STARTTLS throughput (accepted, and end
 * to end until the sink has them), and accept latency at half of the system's maximum with the
 * same traffic: the mix, plain, end to end, measured just before. (Until this session it was half
 * of smtp-source's persistent rate, a maximum with other messages: for Moat, whose CPU per
 * message is higher with the mix, that put the latency run at 65-75% of its load, not half.)
 */
async function measureWithNodeClient(system: System, sink: Sink): Promise<Result["node"]> {
  const base = loadTo(system);
  const run = async (options: Partial<Parameters<typeof runLoad>[0]>): Promise<NodeMode> => {
    const since = sink.count();
    const cpu = cpuWindow(system);
    const started = performance.now();
    const result = await runLoad({ ...base, messages: MESSAGES, ...options });
    await sinkReaches(sink, since + result.sent, 120_000, { everyMs: 20 });
    const seconds = (performance.now() - started) / 1000;
    const endToEnd = (sink.count() - since) / seconds;
    return { ...result, endToEnd, ...cpu(result.sent, seconds) };
  };
  const plain = await run({});
  const tls = await run({ tls: true });
  const tlsPerMessage = await run({ tls: true, perMessage: true });
  const halfRate = plain.endToEnd / 2;
  const before = system.metricsUrl ? await scrapeMoatMetrics(system.metricsUrl) : undefined;
  const half = await run({ messages: Math.max(400, Math.round(halfRate * 10)), rate: halfRate });
  const after = system.metricsUrl ? await scrapeMoatMetrics(system.metricsUrl) : undefined;
  const stages = before && after ? acceptStagesBetween(before, after) : [];
  const eventLoop = before && after ? eventLoopBetween(before, after) : undefined;
  return { plain, tls, tlsPerMessage, half, halfRate, stages, eventLoop };
}

/** Every mode for the targets, its rate smtp-source's until the sink had them all, the Node client's end to end. */
const targetInputs: TargetInputs<Result> = {
  modes: [
    ...smtpSourceModes,
    ...nodeClientModes.map(([label, pick]): [string, (r: Result) => ModeFigures] => [
      label,
      (r) => ({ ...pick(r), rate: pick(r).endToEnd }),
    ]),
  ],
  p99Ms: (r) => r.node.half.p99Ms,
  heldRssMb: (r) => r.sessions.heldRssMb,
  heldSessions: HELD_SESSIONS,
  cores: cpus().length,
};
async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moat-bench-peers-"));
  execFileSync("chmod", ["755", dir]);
  const certificate = makeCertificate(dir, "bench", "relay.bench.test");
  const sink = await startSmtpSink();
  const dns = await startDnsStub();
  const rounds: Result[][] = [];
  try {
    const all: [string, () => Promise<System>][] = [
      ["postfix", () => startPostfix(sink.port, dir, certificate)],
      ["haraka", () => startHaraka(sink.port, dir, certificate, "smtp_forward")],
      ["haraka-nodelay", () => startHaraka(sink.port, dir, certificate, "smtp_forward-nodelay")],
      ["haraka-queue", () => startHaraka(sink.port, dir, certificate, "queue")],
      ["moat", () => startMoat(sink.port, "full", dns.address, certificate)],
      ["moat-thread", () => startMoat(sink.port, "thread", dns.address, certificate)],
      ["moat-nofilter", () => startMoat(sink.port, "off", dns.address, certificate)],
      ["moat-1cpu", () => startMoat(sink.port, "onecpu", dns.address, certificate)],
    ];
    const only = process.env.BENCH_SYSTEMS?.split(",");
    // moat-1cpu only when named: a model of the Azure hosting's container, not one of issue #8's systems.
    const starters = all.filter(([key]) => (only ? only.includes(key) : key !== "moat-1cpu")).map(([, start]) => start);
    for (let round = 0; round < ROUNDS; round++) {
      // Every other round the other way round: no system is always measured first or last
      // while this VM's speed drifts over the minutes of a round.
      const order = round % 2 === 0 ? starters : [...starters].reverse();
      const results: Result[] = [];
      for (const start of order) {
        const system = await start();
        try {
          const sessions = await measureSessions(system);
          await warmUp(system, sink);
          const conn = await measure(system, sink, false);
          const persistent = await measure(system, sink, true);
          const node = await measureWithNodeClient(system, sink);
          results.push({ name: system.name, conn, persistent, node, sessions });
          console.error(`${system.name}: measured${ROUNDS > 1 ? ` (round ${round + 1} of ${ROUNDS})` : ""}`);
        } finally {
          await system.stop();
        }
      }
      rounds.push(round % 2 === 0 ? results : results.reverse());
    }
  } finally {
    sink.stop();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("Moat vs peers: relay throughput");
  const moatNode = process.env.BENCH_MOAT_NODE
    ? ` (Moat on ${execFileSync(process.env.BENCH_MOAT_NODE, ["--version"], { encoding: "utf8" }).trim()})`
    : "";
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}${moatNode}; load smtp-source -s ${SESSIONS} -l ${SIZE} -m ${MESSAGES}, and the Node client (${SESSIONS} sessions, persistent or a connection per message); sink smtp-sink`,
  );
  console.log(
    `each system warmed up first (not measured): smtp-source ${WARM_UP.connections} with a connection per message and ${WARM_UP.persistent} persistent, the mix ${WARM_UP.mix} plain and ${WARM_UP.tls} over STARTTLS`,
  );
  rounds.forEach((results, i) => {
    if (ROUNDS > 1)
      console.log(`round ${i + 1} of ${ROUNDS}${i % 2 === 1 ? " (the systems measured in reverse order)" : ""}`);
    report(results);
  });
  // Both are the full pipeline the targets are set for (the same work; filters.scanThread only moves the verdict).
  const ways: [string, string][] = [
    [MOAT_VARIANTS.full.name, "the full pipeline, the verdict in the gateway's thread"],
    [MOAT_VARIANTS.thread.name, "the full pipeline with the verdict in its own thread (filters.scanThread)"],
  ];
  for (const [moat, what] of ways)
    for (const line of targetVerdicts(
      rounds,
      { moat, postfix: "postfix", haraka: HARAKA, harakaNoDelay: HARAKA_NODELAY },
      what,
      targetInputs,
    ))
      console.log(line);
  const auto = verdictPlacement("auto");
  console.log(
    `the default (filters.scanThread "auto") on this machine: the verdict ${auto.ownThread ? "in its own thread" : "in the gateway's thread"} (${auto.why})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
