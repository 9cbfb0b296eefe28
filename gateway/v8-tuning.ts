/**
 * V8 settings the gateway gives its own process: the command line sets them before any
 * command runs (cli.ts), so `serve` has them before the first message, and so do `scan` and
 * `learn`, which parse saved messages by the thousand (V8's flags are the process's: the
 * verdict's thread gets them too). Set with
 * `v8.setFlagsFromString`, as young-collection.ts sets its flag. It does not throw: a flag a
 * later V8 no longer knows is reported by V8 itself on stderr ("unrecognized flag") and
 * ignored, and the gateway runs with V8's default.
 *
 * `--no-allocation-site-pretenuring`. V8 allocates the objects of an allocation site straight
 * into the old generation once enough of them have survived young collections. The MIME parse
 * (mailparser) makes objects per message that V8 comes to pretenure although each message's
 * die within milliseconds; every young object they point to, the text part's string first, is
 * then kept by every young collection until the next full one (old objects count as alive
 * until a full collection finds otherwise), promoted, and left for the full collections. In
 * mailparser alone at 200 messages a second 3.3–3.5 MB survived each young collection (pauses
 * 6–9 ms) with pretenuring and 0.01 MB without it (1 ms). In the gateway at 200 msgs/s of the
 * mix (bench/RESULTS.md, the AJ session): young-collection pauses p50 1.7–1.9 ms against
 * 3.3–4.0, the client's p99 32.3 and 37.0 ms against 58.3 and 78.5 with the verdict in the
 * gateway's thread, 33.5 and 37.1 against 48.9 and 50.8 in its own, 25–35 MB less at the peak.
 * `moat learn` of the SpamAssassin corpus's spam-1 and easy-ham-1 (3,000 messages; the AK
 * session, three runs each): 6.6–6.7 s of CPU against 7.4–8.0, half the time in GC (0.21–0.23
 * s against 0.43), 231–234 MB at the peak against 238–247.
 * What pretenuring saves, a second copy of objects that do live long, matters little here: the
 * gateway's long-lived state (the directory, the rules index) is built rarely. A full directory
 * sync of 100,000 users measured the same either way (bench/directory-sync.ts, three runs each:
 * 2.3–3.2 s and 240–252 MB at the peak without it, 2.6–2.8 s and 253–258 MB with it).
 */
import { setFlagsFromString } from "node:v8";

export const V8_FLAGS: readonly string[] = ["--no-allocation-site-pretenuring"];

/**
 * Flags V8 reads only when it makes the heap, so `setFlagsFromString` cannot set them: they
 * are on node's command line wherever the gateway is started (the Dockerfile's CMD, `npm start`
 * and `npm run moat`, the tests' and benchmarks' gateways; a test checks each), or in
 * NODE_OPTIONS. `moat serve` warns when one is missing (`missingNodeFlags`).
 *
 * `--max-semi-space-size=4`: the gateway's thread gets a 4 MB semi-space (a 12 MB young
 * generation, as the verdict's thread has, thread-scanner.ts) instead of V8's 16 MB. With 16 MB
 * the thread's young generation was so large beside its old one (about 23 MB live) that V8
 * started incremental marking from a task before the young generation filled: with the verdict
 * in its own thread, a full collection every 0.6 s at 200 msgs/s (pauses up to 8–19 ms, marking
 * steps up to 8 ms), and the young collections that did run copied about 1 MB each (pauses p50
 * 3–6 ms). With 4 MB: a young collection every 0.16 s (p50 about 1 ms), three full ones in 10 s.
 * In alternating runs at 200 msgs/s of the mix (the AK session, bench/RESULTS.md) the client's
 * p99 was lower in every pair: 19.5–37.7 ms (median 28.2) against 21.5–45.5 (38.2) in six pairs
 * with the verdict in its own thread, 38.7–47.6 (42.2) against 42.3–64.0 (52.4) in four with it
 * in the gateway's thread; the full-speed rate within this machine's noise, peak RSS 20–40 MB lower.
 *
 * `--v8-pool-size=1`: one thread for V8's background work (the collections' parallel and
 * concurrent phases, compiling) instead of node's four. The gateway keeps its helper threads
 * off its event loop's CPU (`loopCpu`, loop-cpu.ts), so on two CPUs V8's four helpers share one
 * CPU with libuv's pool: a collection's parallel phase, which the thread that started it waits
 * to finish, then waits on helpers queued behind one another. At 230 msgs/s of the mix with the
 * verdict in its own thread (the AQ session, bench/RESULTS.md) the slowest 1% came in a few
 * stalls of 70–500 ms, in which V8's helpers took up to 120 ms of CPU; with one helper the
 * client's p99 was lower in 9 of 10 alternating pairs (median 36.4 against 51.1 ms), the one
 * helper using 1.27 s of CPU in 10 s against 1.40 for the four. Held to one CPU's quota, as the
 * Azure container by default, lower in two of three pairs, the rates within the runs' noise.
 *
 * `--no-short-builtin-calls`: V8 on x64 copies its embedded builtins (about 2 MB of machine code)
 * next to each isolate's generated code so that code can call them with near calls. The gateway
 * runs three isolates with the verdict in its own thread (the gateway's, the verdict's, the
 * tracker's checkpoints, checkpointer.ts), two without, and each copy is resident: on Node 24,
 * the image's, all of it. Without the copies the isolates share the binary's own pages. A fresh
 * gateway holding 500 sessions (bench/RESULTS.md, the AY session) on Node 24: 147.8–148.4 MB RSS
 * with the verdict in its own thread against 151.5–153.0 (issue #8's target is 150), 130.9–131.8
 * against 131.5–132.9 in the gateway's; on Node 20 130.2 against 131.4 and 111.3 against 114.5.
 * The far calls cost 2–3% of the rate in alternating runs on Node 24 (smtp-source, 4,000
 * messages of 10 KB from 20 sessions: with a connection each 1,214 against 1,247 msgs/s in its
 * own thread, six pairs, 902 against 919 in the gateway's, four; persistent 1,835 against 1,883
 * and 1,581 against 1,663), 1–5% on Node 20 (870 against 882, 1,358 against 1,373).
 */
export const NODE_FLAGS: readonly string[] = [
  "--max-semi-space-size=4",
  "--v8-pool-size=1",
  "--no-short-builtin-calls",
];

/**
 * The flag's name, as node spells it either way (`--max_semi_space_size` is the same flag), and
 * a boolean flag's either way (`--short-builtin-calls` is the admin's choice of the same flag).
 */
const flagName = (flag: string) => (flag.split("=")[0] as string).replace(/_/g, "-").replace(/^--no-/, "--");

/**
 * NODE_FLAGS the process was started without, from node's own arguments and NODE_OPTIONS. A flag
 * given with another value counts as given: an admin's choice.
 */
export function missingNodeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter(Boolean).map(flagName));
  return NODE_FLAGS.filter((flag) => !given.has(flagName(flag)));
}

/** Applies V8_FLAGS (through `set`, for the test). */
export function tuneV8(set: (flag: string) => void = setFlagsFromString): void {
  for (const flag of V8_FLAGS) set(flag);
}
