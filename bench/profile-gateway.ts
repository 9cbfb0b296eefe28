/**
 * Not a benchmark of record: where `moat serve` spends its CPU under load. Starts the full
 * pipeline (as bench/peers.ts does: compiled, as the image runs it) with a CPU profiler in it,
 * sends MESSAGES messages with smtp-source (persistent sessions; `--conn`: a connection per
 * message; `--mix`: the Node client's message mix instead; `--off`: filters off), stops the
 * gateway and prints the functions and packages with the most CPU of their own.
 *
 * `--rate N`: after 1,000 messages of the mix as fast as they go (a warm-up), MESSAGES of it at
 * N messages a second (open loop, as bench/peers.ts measures latency), for where the latency
 * tail comes from. It prints the client's p50/p99, the gateway's own accept times by stage and
 * the event loop's load from /metrics (moat_accept_seconds, moat_event_loop_*), and the loop's
 * busy stretches in the profile (back-to-back samples that are not idle): how much of its busy
 * time came in stretches long enough to hold a reply up, and what ran in them. The profiler
 * samples every 1 ms then (200 µs otherwise), which adds less to the latencies it is run to
 * explain, though still some: compare the p99 with bench/peers.ts's. The profile is kept for
 * Chrome DevTools (Performance, "Load profile"). Start-up is in the profile too, and line numbers are
 * those of the compiled JavaScript in dist/. Only the gateway's main thread is sampled: with
 * `--thread` the verdict's own thread is not in the profile.
 *
 * The slowest 1% at that rate are also grouped by when they were slow (latency-tail.ts), and
 * for the largest episodes it prints what the event loop ran then. With `--sched` (root and
 * Debian's linux-perf) instead of the profile: what every CPU ran over the run and in those
 * episodes, from the kernel's record of each context switch (`perf sched record`,
 * sched-timehist.ts), and where the loop was when off its CPU; the profiler is left out then,
 * as its sampling thread would preempt the loop it is run to watch.
 *
 * `--no-profile` (with `--rate`): neither, the latency and its episodes alone. The gateway gets
 * BENCH_MOAT_NODE_FLAGS too, as in bench/peers.ts.
 *
 *   tsx bench/profile-gateway.ts [MESSAGES] [--mix | --conn | --rate N [--sched | --no-profile]] [--thread | --off]
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate } from "../test/helpers/tls";
import { startDnsStub } from "./dns-stub";
import { type Episode, describeEpisodes, monotonicMs } from "./latency-tail";
import { acceptStagesBetween, eventLoopBetween, scrapeMoatMetrics } from "./moat-metrics";
import { type Slice, printCpuDuring, recordScheduling } from "./sched-timehist";
import { runLoad } from "./load-client";
import { sinkReaches, smtpSource, startMoat, startSmtpSink } from "./peer-systems";

const rateAt = process.argv.indexOf("--rate");
const RATE = rateAt > 0 ? Number(process.argv[rateAt + 1]) : undefined;
if (RATE !== undefined && !(RATE > 0)) throw new Error("--rate needs a number of messages a second");
const MESSAGES = Number(process.argv.find((a, i) => /^\d+$/.test(a) && i !== rateAt + 1) ?? 4000);
const MIX = process.argv.includes("--mix") || RATE !== undefined;
/** With --rate: every CPU's context switches recorded over the run (perf sched), for the episodes. */
const SCHED = process.argv.includes("--sched");
if (SCHED && RATE === undefined) throw new Error("--sched goes with --rate N");
/** --no-profile (with --rate): the latency and its episodes alone, as bench/peers.ts measures them. */
const PROFILE = !SCHED && !process.argv.includes("--no-profile");
if (!PROFILE && RATE === undefined) throw new Error("--no-profile goes with --rate N");
/** With --rate: the mix as fast as it goes first, this many messages (not in the busy stretches). */
const WARM_UP = 1000;
/** Messages in the profile, for the per-message figures. */
const PROFILED = MESSAGES + (RATE === undefined ? 0 : WARM_UP);
/** A stretch of the loop at least this long holds up a reply by a large part of the 20 ms target. */
const LONG_STRETCH_MS = [4, 8];
const FROM = "sender@outside.example";
const TO = "anna.berg@northwind.example";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  /** µs between samples; V8's clock is CLOCK_MONOTONIC, as process.hrtime's. */
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The package a frame belongs to (node_modules package, node: module or our folder), and the function. */
function frameNames({ functionName, url, lineNumber }: ProfileNode["callFrame"]): { pkg: string; fn: string } {
  const where = url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(gateway|bench|test)\//, "$1/");
  const pkg =
    /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url ? where.replace(/\/[^/]*$/, "/") : functionName);
  return { pkg, fn: `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}` };
}

const top = (m: Map<string, number>, n: number, per: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms  ${(ms / per).toFixed(3)} ms/msg  ${k}`)
    .join("\n");

/** Self time by function and by package. */
function summarize(profile: Profile): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const msPerSample = (profile.endTime - profile.startTime) / 1000 / profile.samples.length;
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  for (const id of profile.samples) {
    const { pkg, fn } = frameNames((byId.get(id) as ProfileNode).callFrame);
    functions.set(fn, (functions.get(fn) ?? 0) + msPerSample);
    packages.set(pkg, (packages.get(pkg) ?? 0) + msPerSample);
  }
  console.log(
    `by package (self time):\n${top(packages, 20, PROFILED)}\nby function (self time):\n${top(functions, 30, PROFILED)}`,
  );
}

type Sample = { frame: ProfileNode["callFrame"]; ms: number };

/**
 * The profile's samples taken between `from` and `to` (ms, CLOCK_MONOTONIC, as V8's clock), in
 * order, each with the time it stands for (to the next sample).
 */
function samplesBetween(profile: Profile, from: number, to: number): Sample[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const found: Sample[] = [];
  let at = profile.startTime; // µs
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < from * 1000 || at > to * 1000) continue;
    const { callFrame } = byId.get(profile.samples[i] as number) as ProfileNode;
    found.push({ frame: callFrame, ms: (profile.timeDeltas[i + 1] ?? 0) / 1000 });
  }
  return found;
}

/**
 * The event loop between `from` and `to` (ms, CLOCK_MONOTONIC): its busy stretches, runs of
 * samples that are not idle (one callback after another with no wait between: a reply that
 * arrives during one waits for its end), and the self time in the long ones by package.
 */
function busyStretches(profile: Profile, from: number, to: number): void {
  const stretches: { ms: number; samples: Sample[] }[] = [];
  let current: (typeof stretches)[number] | undefined;
  for (const sample of samplesBetween(profile, from, to)) {
    if (sample.frame.functionName === "(idle)") {
      if (current) stretches.push(current);
      current = undefined;
      continue;
    }
    current ??= { ms: 0, samples: [] };
    current.ms += sample.ms;
    current.samples.push(sample);
  }
  if (current) stretches.push(current);
  const busy = stretches.reduce((sum, s) => sum + s.ms, 0);
  const seconds = (to - from) / 1000;
  const longest = Math.max(0, ...stretches.map((s) => s.ms));
  console.log(
    `event loop: busy ${((100 * busy) / 1000 / seconds).toFixed(0)}% of ${seconds.toFixed(1)} s, ${stretches.length} busy stretches, the longest ${longest.toFixed(1)} ms`,
  );
  for (const limit of LONG_STRETCH_MS) {
    const long = stretches.filter((s) => s.ms > limit);
    const ms = long.reduce((sum, s) => sum + s.ms, 0);
    console.log(
      `  longer than ${limit} ms: ${long.length} (${((100 * long.length) / Math.max(1, stretches.length)).toFixed(1)}% of them), ${((100 * ms) / Math.max(1, busy)).toFixed(0)}% of the busy time`,
    );
  }
  const limit = LONG_STRETCH_MS[LONG_STRETCH_MS.length - 1] as number;
  const packages = new Map<string, number>();
  for (const stretch of stretches.filter((s) => s.ms > limit))
    for (const { frame, ms } of stretch.samples) {
      const { pkg } = frameNames(frame);
      packages.set(pkg, (packages.get(pkg) ?? 0) + ms);
    }
  console.log(`in the stretches longer than ${limit} ms (self time by package):\n${top(packages, 15, MESSAGES)}`);
}

/**
 * What the gateway's event loop did during each of the slowest messages' largest episodes
 * (latency-tail.ts; both clocks CLOCK_MONOTONIC): idle (waiting: for the verdict's thread, the
 * thread pool, or a CPU), collecting garbage, or running, and what ran most.
 */
function duringEpisodes(profile: Profile, found: readonly Episode[], shown = 5): void {
  for (const episode of found.slice(0, shown)) {
    const packages = new Map<string, number>();
    for (const { frame, ms } of samplesBetween(profile, episode.start, episode.end)) {
      const { functionName } = frame;
      const key =
        functionName === "(idle)" || functionName === "(garbage collector)" ? functionName : frameNames(frame).pkg;
      packages.set(key, (packages.get(key) ?? 0) + ms);
    }
    const parts = [...packages]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, ms]) => `${k} ${ms.toFixed(1)}`)
      .join(", ");
    console.log(`  ${describeEpisodes([episode])}: the loop (ms) ${parts}`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moat-profile-"));
  const sink = await startSmtpSink();
  const dns = await startDnsStub();
  const certificate = makeCertificate(dir, "bench", "relay.bench.test");
  // With --sched no profiler: its sampling thread would preempt the loop it is run to watch.
  if (PROFILE) process.env.NODE_OPTIONS = `--require ${join(__dirname, "cpu-profile-hook.cjs")}`;
  process.env.MOAT_CPU_PROFILE_DIR = dir;
  if (RATE !== undefined) process.env.MOAT_PROFILE_INTERVAL_US = "1000";
  const moat = await startMoat(
    sink.port,
    process.argv.includes("--thread") ? "thread" : process.argv.includes("--off") ? "off" : "full",
    dns.address,
    certificate,
  ).catch(async (error: Error) => {
    sink.stop(); // a gateway that did not start leaves no sink or DNS stub behind
    await dns.close();
    throw error;
  });
  delete process.env.NODE_OPTIONS;
  let window: { from: number; to: number } | undefined;
  let slowEpisodes: readonly Episode[] = [];
  let slices: Slice[] | undefined;
  let recording: ReturnType<typeof recordScheduling> | undefined;
  try {
    const load = { port: moat.port, messages: MESSAGES, sessions: 20, size: 10240, from: FROM, to: TO };
    if (RATE !== undefined) {
      // Warmed up first, as bench/peers.ts's latency run is: a cold gateway's first seconds (code
      // loaded and compiled) are busy stretches of 100-200 ms that no production gateway has.
      await runLoad({ ...load, messages: WARM_UP });
      const metricsUrl = moat.metricsUrl as string;
      const before = await scrapeMoatMetrics(metricsUrl);
      recording = SCHED ? recordScheduling(join(dir, "sched.data")) : undefined;
      if (recording) await new Promise((r) => setTimeout(r, 1000)); // perf's start-up (it synthesizes every thread) out of the window
      const from = monotonicMs();
      const result = await runLoad({ ...load, rate: RATE });
      window = { from, to: monotonicMs() };
      slices = await recording?.stop();
      const after = await scrapeMoatMetrics(metricsUrl);
      const phases = Object.entries(result.slowest)
        .map(([phase, ms]) => `${phase} ${ms.toFixed(1)}`)
        .join(", ");
      console.log(
        `${result.sent} sent at ${result.rate.toFixed(0)} msgs/s (${result.failed} failed): p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms; the slowest 1% waited (ms) ${phases}; the client's own loop late p99 ${result.clientLateMs.p99.toFixed(1)} ms`,
      );
      console.log(`its event loop: ${eventLoopBetween(before, after)}`);
      console.log(
        `its own accept times p50 / p99 ms: ${acceptStagesBetween(before, after).join(", ")} (moat_accept_seconds)`,
      );
      slowEpisodes = result.slowestEpisodes;
      console.log(`the slowest 1%: ${describeEpisodes(slowEpisodes)}`);
    } else if (MIX) await runLoad(load);
    else {
      const source = smtpSource(moat.port, { ...load, persistent: !process.argv.includes("--conn") });
      await new Promise((resolve) => source.on("exit", resolve));
    }
    await sinkReaches(sink, PROFILED, 120_000);
  } finally {
    recording?.cancel(); // a run that failed leaves no perf behind
    await moat.stop();
    sink.stop();
    await dns.close();
  }
  console.log(
    `${sink.count()} messages delivered (${RATE ? `the Node client's mix at ${RATE} msgs/s` : MIX ? "the Node client's mix" : process.argv.includes("--conn") ? "smtp-source, a connection per message" : "smtp-source, persistent sessions"})`,
  );
  if (slices && window) {
    console.log("what the CPUs ran over the run and in the slowest 1%'s largest episodes (perf sched):");
    const run = { start: window.from, end: window.to, messages: 0 };
    printCpuDuring(slices, [run, ...slowEpisodes.slice(0, 5)], moat.pid);
    console.log(`the record (perf sched timehist -i): ${join(dir, "sched.data")}`);
  } else if (!PROFILE) rmSync(dir, { recursive: true, force: true }); // nothing in it to look at again
  if (!PROFILE) return;
  const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
  if (!file) throw new Error("the gateway wrote no profile");
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile;
  summarize(profile);
  if (window) {
    busyStretches(profile, window.from, window.to);
    console.log("the slowest 1%'s largest episodes:");
    duringEpisodes(profile, slowEpisodes);
  }
  console.log(`profile: ${join(dir, file)}`);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
