/**
 * Not a benchmark of record: where `moat serve` spends its CPU under load. Starts the full
 * pipeline (as bench/peers.ts does: compiled, as the image runs it) with a CPU profiler in it,
 * sends MESSAGES messages with smtp-source (persistent sessions; `--conn`: a connection per
 * message; `--mix`: the Node client's message mix instead; `--off`: filters off), stops the
 * gateway and prints the functions and packages with the most CPU of their own. The profile is kept for Chrome
 * DevTools (Performance, "Load profile"). Start-up is in the profile too, and line numbers are
 * those of the compiled JavaScript in dist/. Only the gateway's main thread is sampled: with
 * `--thread` the verdict's own thread is not in the profile.
 *
 *   tsx bench/profile-gateway.ts [MESSAGES] [--mix | --conn] [--thread | --off]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate } from "../test/helpers/tls";
import { startDnsStub } from "./dns-stub";
import { runLoad } from "./load-client";
import { startMoat, startSmtpSink } from "./peer-systems";

const MESSAGES = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 4000);
const MIX = process.argv.includes("--mix");
const FROM = "sender@outside.example";
const TO = "anna.berg@northwind.example";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time by function and by package (node_modules package, node: module or our folder). */
function summarize(file: string): void {
  const profile = JSON.parse(readFileSync(file, "utf8")) as {
    nodes: ProfileNode[];
    samples: number[];
    startTime: number;
    endTime: number;
  };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const msPerSample = (profile.endTime - profile.startTime) / 1000 / profile.samples.length;
  const functions = new Map<string, number>();
  const packages = new Map<string, number>();
  for (const id of profile.samples) {
    const { functionName, url, lineNumber } = (byId.get(id) as ProfileNode).callFrame;
    const where = url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(gateway|bench|test)\//, "$1/");
    const pkg =
      /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url ? where.replace(/\/[^/]*$/, "/") : functionName);
    const fn = `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + msPerSample);
    packages.set(pkg, (packages.get(pkg) ?? 0) + msPerSample);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms  ${(ms / MESSAGES).toFixed(3)} ms/msg  ${k}`)
      .join("\n");
  console.log(`by package (self time):\n${top(packages, 20)}\nby function (self time):\n${top(functions, 30)}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moat-profile-"));
  const sink = await startSmtpSink();
  const dns = await startDnsStub();
  const certificate = makeCertificate(dir, "bench", "relay.bench.test");
  process.env.NODE_OPTIONS = `--require ${join(__dirname, "cpu-profile-hook.cjs")}`;
  process.env.MOAT_CPU_PROFILE_DIR = dir;
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
  try {
    if (MIX) await runLoad({ port: moat.port, messages: MESSAGES, sessions: 20, size: 10240, from: FROM, to: TO });
    else {
      const args = ["-s", "20", "-l", "10240", "-m", String(MESSAGES), "-f", FROM, "-t", TO];
      if (!process.argv.includes("--conn")) args.push("-d");
      const source = spawn("smtp-source", [...args, `127.0.0.1:${moat.port}`], { stdio: "ignore" });
      await new Promise((resolve) => source.on("exit", resolve));
    }
    const deadline = Date.now() + 120_000;
    while (sink.count() < MESSAGES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await moat.stop();
    sink.stop();
    await dns.close();
  }
  const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
  if (!file) throw new Error("the gateway wrote no profile");
  console.log(
    `${sink.count()} messages delivered (${MIX ? "the Node client's mix" : process.argv.includes("--conn") ? "smtp-source, a connection per message" : "smtp-source, persistent sessions"})`,
  );
  summarize(join(dir, file));
  console.log(`profile: ${join(dir, file)}`);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
