/**
 * Benchmark (not a test): one large message through `moat serve` (spool + verdict + delivery)
 * to a sink on loopback. Reports throughput of the accept — from the client's first byte after
 * the 354 to the 250, the message already written whole into the socket's buffer so the client
 * costs nothing — and the gateway process's peak RSS growth, read from /proc (VmHWM), against
 * the issue's targets: 50 MB/s or better, RSS growth at most twice the message size.
 *
 *   npm run bench            (the quick set)
 *   tsx bench/large-message.ts [MB] [--filters-off | --scan-thread]
 *   (--filters-off: the receive path alone; --scan-thread: the verdict in its own thread)
 */
import { readFileSync, rmSync } from "node:fs";
import { cpus } from "node:os";
import { compiledGateway, startGatewayProcess, writeTestConfig } from "../test/helpers/gateway-process";
import { startSink } from "../test/helpers/sink";
import { openRawSession } from "../test/helpers/raw-smtp";
import { largeMessage } from "../test/helpers/smtp-client";

const MB = 1024 * 1024;

/** One transaction; resolves with the reply to the message and the time from its first byte to that reply. */
async function send(port: number, message: string): Promise<{ reply: string; ms: number }> {
  if (/\n\./.test(message)) throw new Error("the bench message must need no dot-stuffing");
  const session = await openRawSession(port, 120_000);
  try {
    await session.reply();
    for (const [command, code] of [
      ["EHLO client.test", "250"],
      ["MAIL FROM:<a@outside.example>", "250"],
      ["RCPT TO:<anna.berg@northwind.example>", "250"],
      ["DATA", "354"],
    ] as const) {
      const reply = await session.send(command);
      if (!reply.startsWith(code)) throw new Error(`${command}: ${reply}`);
    }
    const data = Buffer.from(`${message}.\r\n`, "latin1");
    const started = process.hrtime.bigint();
    const reply = await session.send(data);
    return { reply, ms: Number(process.hrtime.bigint() - started) / 1e6 };
  } finally {
    session.close();
  }
}

function memoryKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0);
}

/** The process's CPU time so far (user + system), in ms. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").pop()!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv.slice(2).find((a) => /^\d/.test(a)) ?? 25);
  const filters = !process.argv.includes("--filters-off");
  const scanThread = process.argv.includes("--scan-thread");
  const sink = await startSink();
  const { file, dir } = writeTestConfig({
    smartHostPort: sink.port,
    edit: (d) => ({ ...d, filters: { ...d.filters, enabled: filters, scanThread } }),
  });
  const gateway = await startGatewayProcess(["--config", file], {}, compiledGateway()); // what the image runs
  const pid = gateway.child.pid ?? 0;
  try {
    // Warm up (JIT, first connection), then measure from a settled baseline.
    await send(gateway.smtpPort, largeMessage(64 * 1024));
    await sink.waitFor(1);
    const message = largeMessage(megabytes * MB);
    const baselineKb = memoryKb(pid, "VmRSS");
    const started = process.hrtime.bigint();
    const cpuBefore = cpuMs(pid);
    const result = await send(gateway.smtpPort, message);
    const acceptedMs = result.ms;
    const acceptCpuMs = cpuMs(pid) - cpuBefore;
    await sink.waitFor(2, 60_000);
    const deliveredMs = Number(process.hrtime.bigint() - started) / 1e6;
    const peakKb = memoryKb(pid, "VmHWM");
    const sizeMb = message.length / MB;
    const growthMb = Math.max(0, peakKb - baselineKb) / 1024;
    const rate = sizeMb / (acceptedMs / 1000);
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`);
    console.log(
      `message: ${sizeMb.toFixed(1)} MB (${result.reply.slice(0, 3)}), filters ${filters ? (scanThread ? "on, in their own thread" : "on") : "off"}`,
    );
    console.log(
      `accept: ${acceptedMs.toFixed(0)} ms = ${rate.toFixed(1)} MB/s (target >= 50 MB/s: ${rate >= 50 ? "met" : `missed by ${(50 - rate).toFixed(1)} MB/s`})`,
    );
    console.log(`gateway CPU during the accept: ${acceptCpuMs.toFixed(0)} ms (of ${acceptedMs.toFixed(0)} ms)`);
    console.log(`connect to delivered: ${deliveredMs.toFixed(0)} ms`);
    console.log(
      `gateway RSS: baseline ${(baselineKb / 1024).toFixed(0)} MB, peak ${(peakKb / 1024).toFixed(0)} MB, growth ${growthMb.toFixed(1)} MB = ${(growthMb / sizeMb).toFixed(2)}x the message (target <= 2x: ${growthMb <= 2 * sizeMb ? "met" : "missed"})`,
    );
  } finally {
    await gateway.stop();
    await sink.close();
    rmSync(dir, { recursive: true, force: true }); // its config, spool and tracker
  }
}

void main();
