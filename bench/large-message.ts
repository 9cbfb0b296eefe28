/**
 * Benchmark (not a test): one large message through `moat serve` (spool + delivery) to a
 * sink on loopback. Reports throughput of the accept (client DATA start -> 250) and the
 * gateway process's peak RSS growth, read from /proc (VmHWM), against the issue's targets:
 * 50 MB/s or better, RSS growth at most twice the message size.
 *
 *   npm run bench            (the quick set)
 *   tsx bench/large-message.ts [MB]
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { startGatewayProcess, writeTestConfig } from "../test/helpers/gateway-process";
import { startSink } from "../test/helpers/sink";
import { largeMessage, sendMail } from "../test/helpers/smtp-client";

const MB = 1024 * 1024;

function memoryKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 25);
  const sink = await startSink();
  const { file } = writeTestConfig({ smartHostPort: sink.port });
  const gateway = await startGatewayProcess(["--config", file], {});
  const pid = gateway.child.pid ?? 0;
  try {
    // Warm up (JIT, first connection), then measure from a settled baseline.
    await sendMail(
      gateway.smtpPort,
      { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
      largeMessage(64 * 1024),
    );
    await sink.waitFor(1);
    const message = largeMessage(megabytes * MB);
    const baselineKb = memoryKb(pid, "VmRSS");
    const started = process.hrtime.bigint();
    const result = await sendMail(
      gateway.smtpPort,
      { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
      message,
    );
    const acceptedMs = Number(process.hrtime.bigint() - started) / 1e6;
    await sink.waitFor(2, 60_000);
    const deliveredMs = Number(process.hrtime.bigint() - started) / 1e6;
    const peakKb = memoryKb(pid, "VmHWM");
    const sizeMb = message.length / MB;
    const growthMb = Math.max(0, peakKb - baselineKb) / 1024;
    const rate = sizeMb / (acceptedMs / 1000);
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`);
    console.log(`message: ${sizeMb.toFixed(1)} MB (${result.response.slice(0, 3)})`);
    console.log(
      `accept: ${acceptedMs.toFixed(0)} ms = ${rate.toFixed(1)} MB/s (target >= 50 MB/s: ${rate >= 50 ? "met" : `missed by ${(50 - rate).toFixed(1)} MB/s`})`,
    );
    console.log(`accept + delivery: ${deliveredMs.toFixed(0)} ms`);
    console.log(
      `gateway RSS: baseline ${(baselineKb / 1024).toFixed(0)} MB, peak ${(peakKb / 1024).toFixed(0)} MB, growth ${growthMb.toFixed(1)} MB = ${(growthMb / sizeMb).toFixed(2)}x the message (target <= 2x: ${growthMb <= 2 * sizeMb ? "met" : "missed"})`,
    );
  } finally {
    await gateway.stop();
    await sink.close();
  }
}

void main();
