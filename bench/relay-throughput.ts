/**
 * Benchmark (not a test): relay throughput of `moat serve` (spool + delivery; no filters
 * yet) on this machine: BENCH_MESSAGES messages of ~10 KB from BENCH_CLIENTS concurrent
 * clients, one connection per message, to a sink on loopback. Reports messages/s end to end
 * (until the sink has them all), accept latency p50/p99 and the gateway's CPU per message.
 * The peers (Postfix, Haraka) are not in this run yet: see shared/notes/relay-throughput-peers.md
 * for their figures on this kind of machine.
 *
 *   tsx bench/relay-throughput.ts
 */
import { readFileSync, rmSync } from "node:fs";
import { startDnsStub } from "./dns-stub";
import { cpus } from "node:os";
import {
  compiledGateway,
  startGatewayProcess,
  writeTestConfig,
  LOAD_TEST_LIMITS,
} from "../test/helpers/gateway-process";
import { startSink } from "../test/helpers/sink";
import { sendMail } from "../test/helpers/smtp-client";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20);
const BODY = `From: a@outside.example\r\nTo: anna.berg@northwind.example\r\nSubject: bench\r\n\r\n${"x".repeat(76).concat("\r\n").repeat(130)}`;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  return (ticks * 1000) / 100; // USER_HZ = 100 on Linux
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function main(): Promise<void> {
  const sink = await startSink();
  // One load generator on one IP: lift the per-client limits that would (rightly) stop it.
  const { file, dir } = writeTestConfig({
    smartHostPort: sink.port,
    edit: (d) => ({
      ...d,
      // The verdict in the gateway's thread, as in every run of this benchmark before "auto"
      // (which would choose a thread of its own on a machine with two usable CPUs).
      filters: { ...d.filters, scanThread: false },
      smtp: {
        ...d.smtp,
        limits: { ...LOAD_TEST_LIMITS },
      },
    }),
  });
  // Authentication asks DNS for every message: a local stub that answers at once (NXDOMAIN),
  // as a caching resolver beside a production gateway would for most of them.
  const dns = await startDnsStub();
  const gateway = await startGatewayProcess(
    ["--config", file],
    { MOAT_LOG_LEVEL: "warn", MOAT_DNS_SERVERS: dns.address },
    compiledGateway(), // what the image runs
  );
  const pid = gateway.child.pid ?? 0;
  try {
    const latencies: number[] = [];
    let next = 0;
    const cpuBefore = cpuMs(pid);
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (next < MESSAGES) {
          next++;
          const t0 = process.hrtime.bigint();
          const result = await sendMail(
            gateway.smtpPort,
            { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
            BODY,
          );
          if (!result.response.startsWith("250")) throw new Error(`not accepted: ${result.response}`);
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }),
    );
    await sink.waitFor(MESSAGES, 120_000);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = cpuMs(pid) - cpuBefore;
    latencies.sort((a, b) => a - b);
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`);
    console.log(
      `moat serve (spool + verdict without external engines + delivery), ${MESSAGES} x ${(BODY.length / 1024).toFixed(1)} KB, ${CLIENTS} clients, a connection per message`,
    );
    console.log(`throughput: ${(MESSAGES / seconds).toFixed(0)} msgs/s end to end`);
    console.log(
      `accept latency: p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`,
    );
    console.log(`gateway CPU: ${(cpu / MESSAGES).toFixed(2)} ms/msg`);
  } finally {
    await gateway.stop();
    await sink.close();
    await dns.close();
    rmSync(dir, { recursive: true, force: true }); // its config, spool and tracker
  }
}

void main();
