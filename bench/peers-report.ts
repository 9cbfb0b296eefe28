/**
 * bench/peers.ts's figures and its report of one round: each system's modes with ratios to
 * that round's Postfix and Haraka, latency at half load, held sessions and peak memory.
 */
import { cpus } from "node:os";
import { describeEpisodes } from "./latency-tail";
import type { LoadResult } from "./load-client";
import { HELD_SESSIONS, harakaName } from "./peer-systems";
import type { ModeFigures } from "./targets";

/**
 * One load mode's figures. Beside the rate and the system's CPU per message: how many of the
 * machine's cores were busy (the system, the load generator, the sink, the kernel) and how
 * much of one core the system's busiest thread took. A system whose busiest thread is near a
 * full core is held by that thread (an event loop); one with every core busy, by the machine;
 * one with neither, by waiting (a disk, a downstream reply, too few sessions).
 */
export interface Mode extends ModeFigures {
  readonly busyCores: number;
  readonly busiestThread: number;
  /** How often the system's threads were put on a CPU, and how long they waited for it (proc-usage.ts), a message. */
  readonly wakesPerMsg: number;
  readonly waitPerMsg: number;
  /** The same for the main thread alone (Moat's and Haraka's event loop; Postfix's master), with its time on a CPU. */
  readonly main: {
    readonly wakesPerMsg: number;
    readonly runPerMsg: number;
    readonly waitPerMsg: number;
    /** Of the window, the share it was running or waiting to run: near 1, the loop holds the rate. */
    readonly occupied: number;
  };
  /** CPU (ms) a message by kind of thread, most first (proc-usage.ts cpuByThread). */
  readonly byThread: readonly { readonly name: string; readonly threads: number; readonly perMsg: number }[];
}

/** A mode measured with smtp-source, with the peak memory sampled during it. */
export interface SourceMode extends Mode {
  readonly rssMb: number;
}

/** A mode measured with the Node client: its own figures (rate: accepted), the rate end to end, and the system's. */
export type NodeMode = LoadResult & Omit<Mode, "rate"> & { readonly endToEnd: number };

/** One system's figures in one round. */
export interface Result {
  readonly name: string;
  readonly conn: SourceMode;
  readonly persistent: SourceMode;
  readonly node: {
    readonly plain: NodeMode;
    readonly tls: NodeMode;
    readonly tlsPerMessage: NodeMode;
    /** The mix at halfRate, open loop. */
    readonly half: NodeMode;
    readonly halfRate: number;
    /** Moat's own accept times by stage there, and its event loop (empty, undefined for the peers). */
    readonly stages: readonly string[];
    readonly eventLoop: string | undefined;
  };
  /** Memory with HELD_SESSIONS sessions held mid-transaction, on a fresh start. */
  readonly sessions: {
    readonly open: number;
    readonly errors: number;
    /** PSS (treeMemoryKb). */
    readonly idlePssMb: number;
    readonly heldPssMb: number;
    /** RSS: what issue #8's target is of, as a container running Moat alone is charged. */
    readonly heldRssMb: number;
  };
}

export const smtpSourceModes: [string, (r: Result) => Mode][] = [
  ["smtp-source conn/msg", (r) => r.conn],
  ["smtp-source persist.", (r) => r.persistent],
];
export const nodeClientModes: [string, (r: Result) => NodeMode][] = [
  ["node client plain", (r) => r.node.plain],
  ["node client STARTTLS", (r) => r.node.tls],
  ["STARTTLS, conn/msg", (r) => r.node.tlsPerMessage],
];

/** Haraka with smtp_forward: the peer of the 2x target. */
export const HARAKA = harakaName("smtp_forward");
/** The same with TCP_NODELAY on its sockets to the sink: printed beside the target. */
export const HARAKA_NODELAY = harakaName("smtp_forward-nodelay");
/** The peers every system's figures are compared with: each one's label in the report, and its name. */
const PEERS: readonly (readonly [label: string, name: string])[] = [
  ["Postfix", "postfix"],
  ["Haraka", HARAKA],
  ["Haraka with TCP_NODELAY", HARAKA_NODELAY],
];

/** One round's figures, system by system, with ratios to each peer measured in that round. */
export function report(results: readonly Result[]): void {
  const peers = PEERS.flatMap(([label, name]) => {
    const peer = results.find((r) => r.name === name);
    return peer ? [{ label, peer }] : [];
  });
  const ratio = (value: number, pick: (r: Result) => number) =>
    peers.map(({ label, peer }) => `${(value / pick(peer)).toFixed(2)}x ${label}`).join(", ") || "no peer measured";
  /** Milliseconds a message over times a message: microseconds each time. */
  const each = (msPerMsg: number, timesPerMsg: number) => ((msPerMsg / Math.max(timesPerMsg, 1e-9)) * 1000).toFixed(0);
  const cpu = (m: Mode) =>
    `${m.cpuPerMsg.toFixed(2)} ms CPU/msg, the load's side ${m.loadPerMsg.toFixed(2)}; ${m.busyCores.toFixed(2)} of ${cpus().length} cores busy, its busiest thread ${(m.busiestThread * 100).toFixed(0)}% of a core; its threads put on a CPU ${m.wakesPerMsg.toFixed(1)} times a message, waiting ${each(m.waitPerMsg, m.wakesPerMsg)} µs each for it; its main thread ${m.main.wakesPerMsg.toFixed(1)} times, running ${each(m.main.runPerMsg, m.main.wakesPerMsg)} µs and waiting ${each(m.main.waitPerMsg, m.main.wakesPerMsg)} µs each, running or waiting ${(m.main.occupied * 100).toFixed(0)}% of the time`;
  const failures = (r: LoadResult) => (r.failed ? ` [${r.failed} failed: ${r.firstError}]` : "");
  for (const r of results) {
    console.log(`${r.name}`);
    for (const [label, pick] of smtpSourceModes) {
      const m = pick(r);
      console.log(
        `  ${label.padEnd(21)} ${m.rate.toFixed(0).padStart(5)} msgs/s (${ratio(m.rate, (x) => pick(x).rate)}; ${cpu(m)})`,
      );
    }
    for (const [label, pick] of nodeClientModes) {
      const m = pick(r);
      console.log(
        `  ${label.padEnd(21)} ${m.rate.toFixed(0).padStart(5)} msgs/s accepted, ${m.endToEnd.toFixed(0)} end to end (${ratio(m.endToEnd, (x) => pick(x).endToEnd)}; ${cpu(m)})${failures(m)}`,
      );
    }
    const byThread = (m: Mode) =>
      m.byThread
        .filter((t) => t.perMsg >= 0.005)
        .map((t) => `${t.name}${t.threads > 1 ? ` x${t.threads}` : ""} ${t.perMsg.toFixed(2)}`)
        .join(", ");
    console.log(
      `  CPU by thread, ms/msg ${smtpSourceModes.map(([label, pick]) => `${label.trim()}: ${byThread(pick(r))}`).join("; ")}`,
    );
    console.log(
      `  latency at half load  ${r.node.halfRate.toFixed(0)} msgs/s offered (half of its plain rate with the mix): p50 ${r.node.half.p50Ms.toFixed(1)} ms, p99 ${r.node.half.p99Ms.toFixed(1)} ms${failures(r.node.half)}`,
    );
    const slow = r.node.half.slowest;
    console.log(
      `  slowest 1% there     waited ${slow.waited.toFixed(1)}, MAIL ${slow.mail.toFixed(1)}, RCPT ${slow.rcpt.toFixed(1)}, DATA ${slow.data.toFixed(1)}, data to 250 ${slow.body.toFixed(1)} ms (means); the client's own loop late p99 ${r.node.half.clientLateMs.p99.toFixed(1)} / max ${r.node.half.clientLateMs.max.toFixed(1)} ms`,
    );
    console.log(`  when they were slow   ${describeEpisodes(r.node.half.slowestEpisodes)}`);
    if (r.node.stages.length > 0)
      console.log(`  its own accept times  p50 / p99 ms: ${r.node.stages.join(", ")} (moat_accept_seconds)`);
    if (r.node.eventLoop) console.log(`  its event loop there  ${r.node.eventLoop}`);
    console.log(
      `  ${HELD_SESSIONS} sessions held     ${r.sessions.open} open (${r.sessions.errors} failed), fresh start: PSS ${r.sessions.idlePssMb.toFixed(0)} MB idle -> ${r.sessions.heldPssMb.toFixed(0)} MB (RSS ${r.sessions.heldRssMb.toFixed(0)} MB)`,
    );
    console.log(`  peak PSS under load   ${Math.max(r.conn.rssMb, r.persistent.rssMb).toFixed(0)} MB`);
  }
}
