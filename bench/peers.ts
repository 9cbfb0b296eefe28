/**
 * Benchmark (not a test): Moat side by side with its peers, in one run on this machine
 * (issue #8). Load: Postfix's `smtp-source` (20 sessions, 10 KB messages, one recipient),
 * once with a new connection per message and once with persistent sessions (`-d`). Every
 * system relays to the same sink, Postfix's `smtp-sink`; a run ends when the sink has every
 * message. Systems:
 *
 *   postfix       Postfix as a plain relay (its queue, fsync on, no filter), from Debian
 *   haraka        Haraka from npm with smtp_forward (no local queue), one process; and with its
 *                 own disk queue and outbound delivery (the ratios are to smtp_forward)
 *   moat-full     `moat serve`: spool (fsync) + the verdict without external engines + delivery
 *   moat-nofilter the same with filters.enabled=false
 *
 * Then, with the Node load client (bench/load-client.ts; persistent sessions): throughput in
 * plain SMTP and over STARTTLS (every system gets the same self-signed certificate), accept
 * latency p50/p99 at half of the system's own maximum (open loop: latency counts from when a
 * message was due), and memory with 500 concurrent sessions held mid-transaction.
 *
 * Reported: messages/s, CPU ms per message of the system's processes (from /proc), peak RSS,
 * and ratios to Postfix and Haraka. Needs root (Postfix), Debian's postfix package and the
 * npm registry (Haraka is installed into a temporary directory).
 *
 *   tsx bench/peers.ts [MESSAGES]      (BENCH_SYSTEMS=postfix,haraka,haraka-queue,moat,moat-nofilter: a subset)
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { startDnsStub } from "./dns-stub";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startGatewayProcess, writeTestConfig, LOAD_TEST_LIMITS } from "../test/helpers/gateway-process";
import { makeCertificate } from "../test/helpers/tls";
import { type LoadResult, holdSessions, runLoad } from "./load-client";

const MESSAGES = Number(process.argv[2] ?? 2000);
const SESSIONS = 20;
const SIZE = 10240;
const CLK_TCK_MS = 10;
const HELD_SESSIONS = 500;
const FROM = "sender@outside.example";
const TO = "anna.berg@northwind.example";

interface Certificate {
  readonly certFile: string;
  readonly keyFile: string;
}

interface Sink {
  readonly port: number;
  count(): number;
  stop(): void;
}

async function startSmtpSink(): Promise<Sink> {
  const port = await freePort();
  const child = spawn("smtp-sink", ["-u", "nobody", "-c", "-m", "1024", `127.0.0.1:${port}`, "1024"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let last = 0;
  child.stdout.on("data", (d: Buffer) => {
    const all = [...d.toString().matchAll(/mesg=(\d+)/g)];
    const value = all[all.length - 1]?.[1];
    if (value) last = Number(value);
  });
  await new Promise((r) => setTimeout(r, 300));
  return { port, count: () => last, stop: () => child.kill("SIGKILL") };
}

/**
 * CPU (ms) and memory (kB) of a process tree: the root and every descendant. Memory is PSS
 * (proportional set size, /proc/PID/smaps_rollup): pages shared between processes — Postfix's
 * one smtpd per session — are divided among them instead of counted once per process.
 */
function treeUsage(rootPid: number): { cpuMs: number; rssKb: number } {
  const parent = new Map<number, number>();
  const stats = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parent.set(Number(entry), Number(fields[1]));
      stats.set(Number(entry), stat);
    } catch {
      // exited meanwhile
    }
  }
  const inTree = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = parent.get(p) ?? 0, hops++) if (p === rootPid) return true;
    return false;
  };
  let cpuMs = 0;
  let rssKb = 0;
  for (const [pid, stat] of stats) {
    if (!inTree(pid)) continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime + stime, and cutime + cstime: children that exited (Postfix's smtpd) still count.
    cpuMs += (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * CLK_TCK_MS;
    try {
      rssKb += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { cpuMs, rssKb };
}

interface System {
  readonly name: string;
  readonly port: number;
  /** Root of the system's process tree, for CPU and memory. */
  readonly pid: number;
  stop(): Promise<void>;
}

async function startPostfix(sinkPort: number, dir: string, certificate: Certificate): Promise<System> {
  const port = await freePort();
  const config = join(dir, "postfix");
  mkdirSync(config, { recursive: true });
  const master = readFileSync("/etc/postfix/master.cf", "utf8").replace(
    /^smtp\s+inet.*$/m,
    `127.0.0.1:${port} inet n - n - - smtpd`,
  );
  writeFileSync(join(config, "master.cf"), master);
  writeFileSync(
    join(config, "main.cf"),
    [
      "compatibility_level = 3.6",
      `queue_directory = ${join(dir, "postfix-queue")}`,
      `data_directory = ${join(dir, "postfix-data")}`,
      "myhostname = relay.bench.test",
      "inet_interfaces = 127.0.0.1",
      "inet_protocols = ipv4",
      "mydestination =",
      `relayhost = [127.0.0.1]:${sinkPort}`,
      "mynetworks = 127.0.0.0/8",
      "smtpd_relay_restrictions = permit_mynetworks, reject",
      "alias_maps =",
      "alias_database =",
      "local_recipient_maps =",
      "smtp_tls_security_level = none",
      "smtpd_tls_security_level = may",
      `smtpd_tls_cert_file = ${certificate.certFile}`,
      `smtpd_tls_key_file = ${certificate.keyFile}`,
      // Enough smtpd processes for the held sessions (one process per session).
      `default_process_limit = ${HELD_SESSIONS + 50}`,
      "smtputf8_enable = no",
      "",
    ].join("\n"),
  );
  // Postfix runs an alternate configuration only when the default one lists it.
  // (Debian's "No configuration" install has no main.cf at all.)
  const main = existsSync("/etc/postfix/main.cf") ? readFileSync("/etc/postfix/main.cf", "utf8") : "";
  if (!main.includes(config)) appendFileSync("/etc/postfix/main.cf", `\nalternate_config_directories = ${config}\n`);
  for (const d of ["postfix-queue", "postfix-data"]) mkdirSync(join(dir, d), { recursive: true });
  execFileSync("chown", ["postfix", join(dir, "postfix-data")]);
  execFileSync("postfix", ["-c", config, "start"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 1500));
  const pid = Number(readFileSync(join(dir, "postfix-queue", "pid", "master.pid"), "utf8").trim());
  return {
    name: "postfix",
    port,
    pid,
    stop: async () => {
      execFileSync("postfix", ["-c", config, "stop"], { stdio: "ignore" });
    },
  };
}

/**
 * Haraka from npm, installed once per run. `smtp_forward`: each message is forwarded to the
 * sink during the client's DATA (no local queue). `queue`: connections are marked as relaying,
 * so Haraka writes each message to its own disk queue and its outbound engine delivers it
 * (a tiny plugin points every domain's MX at the sink; outbound.ini allows a loopback MX).
 */
async function startHaraka(
  sinkPort: number,
  dir: string,
  certificate: Certificate,
  mode: "smtp_forward" | "queue",
): Promise<System> {
  const port = await freePort();
  const home = join(dir, "haraka");
  mkdirSync(home, { recursive: true });
  const bin = join(home, "node_modules", ".bin", "haraka");
  if (!existsSync(bin))
    execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", home, "Haraka@3.3.4"], {
      stdio: "ignore",
    });
  const site = join(home, `site-${mode}`);
  execFileSync(bin, ["-i", site], { stdio: "ignore" });
  writeFileSync(join(site, "config", "smtp.ini"), `listen=127.0.0.1:${port}\nnodes=0\n`);
  writeFileSync(join(site, "config", "tls_cert.pem"), readFileSync(certificate.certFile));
  writeFileSync(join(site, "config", "tls_key.pem"), readFileSync(certificate.keyFile));
  writeFileSync(join(site, "config", "host_list"), "northwind.example\n");
  writeFileSync(join(site, "config", "log.ini"), "[main]\nlevel=error\n");
  if (mode === "smtp_forward") {
    writeFileSync(join(site, "config", "plugins"), "tls\nrcpt_to.in_host_list\nqueue/smtp_forward\n");
    writeFileSync(
      join(site, "config", "smtp_forward.ini"),
      `host=127.0.0.1\nport=${sinkPort}\nenable_tls=false\nmax_connections=100\n`,
    );
  } else {
    writeFileSync(join(site, "config", "plugins"), "tls\nbench_relay\nrcpt_to.in_host_list\n");
    mkdirSync(join(site, "plugins"), { recursive: true });
    writeFileSync(
      join(site, "plugins", "bench_relay.js"),
      [
        "exports.hook_connect = function (next, connection) { connection.relaying = true; next(); };",
        `exports.hook_get_mx = function (next, hmail, domain) { next(OK, { exchange: "127.0.0.1", port: ${sinkPort}, priority: 0 }); };`,
        "",
      ].join("\n"),
    );
    writeFileSync(join(site, "config", "outbound.ini"), "enable_tls=false\nlocal_mx_ok=true\nconcurrency_max=100\n");
  }
  const child: ChildProcess = spawn(bin, ["-c", site], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 2500));
  return {
    name: `haraka (${mode})`,
    port,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill("SIGKILL");
    },
  };
}

async function startMoat(
  sinkPort: number,
  filters: boolean,
  dnsAddress: string,
  certificate: Certificate,
): Promise<System> {
  const { file, dir } = writeTestConfig({
    smartHostPort: sinkPort,
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
    // One load generator on one IP: lift the per-client limits that would (rightly) stop it.
    edit: (d) => ({
      ...d,
      filters: { ...d.filters, enabled: filters },
      smtp: {
        ...d.smtp,
        limits: { ...LOAD_TEST_LIMITS },
      },
    }),
  });
  const gateway = await startGatewayProcess(["--config", file], {
    MOAT_LOG_LEVEL: "error",
    MOAT_DNS_SERVERS: dnsAddress,
  });
  return {
    name: filters ? "moat (spool + verdict + delivery)" : "moat (filters off)",
    port: gateway.smtpPort,
    pid: gateway.child.pid ?? 0,
    stop: async () => {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function measure(
  system: System,
  sink: Sink,
  persistent: boolean,
): Promise<{ rate: number; cpuPerMsg: number; rssMb: number }> {
  const start = sink.count();
  const before = treeUsage(system.pid);
  let peakKb = before.rssKb;
  const started = process.hrtime.bigint();
  const args = ["-s", String(SESSIONS), "-l", String(SIZE), "-m", String(MESSAGES), "-f", FROM, "-t", TO];
  if (persistent) args.push("-d");
  const source = spawn("smtp-source", [...args, `127.0.0.1:${system.port}`], { stdio: "ignore" });
  const deadline = Date.now() + 180_000;
  while (sink.count() - start < MESSAGES && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    peakKb = Math.max(peakKb, treeUsage(system.pid).rssKb);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  source.kill("SIGKILL");
  const after = treeUsage(system.pid);
  const delivered = sink.count() - start;
  return {
    rate: delivered / seconds,
    cpuPerMsg: (after.cpuMs - before.cpuMs) / Math.max(1, delivered),
    rssMb: peakKb / 1024,
  };
}

/** Memory with HELD_SESSIONS sessions held mid-transaction, on a freshly started system. */
async function measureSessions(system: System) {
  const idle = treeUsage(system.pid).rssKb;
  const held = await holdSessions({ port: system.port, from: FROM, to: TO }, HELD_SESSIONS);
  await new Promise((r) => setTimeout(r, 1000));
  const holding = treeUsage(system.pid).rssKb;
  held.close();
  await new Promise((r) => setTimeout(r, 1000));
  return { open: held.open, errors: held.errors.length, idleMb: idle / 1024, heldMb: holding / 1024 };
}

/**
 * The Node client's figures for one system: plain and STARTTLS throughput (accepted, and end
 * to end until the sink has them), and accept latency at half of the system's end-to-end
 * maximum (smtp-source's persistent-session rate, measured just before).
 */
async function measureWithNodeClient(system: System, sink: Sink, endToEndMax: number) {
  const base = { port: system.port, sessions: SESSIONS, size: SIZE, from: FROM, to: TO };
  const run = async (options: Partial<Parameters<typeof runLoad>[0]>) => {
    const since = sink.count();
    const before = treeUsage(system.pid);
    const started = performance.now();
    const result = await runLoad({ ...base, messages: MESSAGES, ...options });
    const deadline = Date.now() + 120_000;
    while (sink.count() - since < result.sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const endToEnd = (sink.count() - since) / ((performance.now() - started) / 1000);
    const cpuPerMsg = (treeUsage(system.pid).cpuMs - before.cpuMs) / Math.max(1, result.sent);
    return { ...result, endToEnd, cpuPerMsg };
  };
  const plain = await run({});
  const tls = await run({ tls: true });
  const halfRate = endToEndMax / 2;
  const half = await run({ messages: Math.max(400, Math.round(halfRate * 10)), rate: halfRate });
  return { plain, tls, half, halfRate };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moat-bench-peers-"));
  execFileSync("chmod", ["755", dir]);
  const certificate = makeCertificate(dir, "bench", "relay.bench.test");
  const sink = await startSmtpSink();
  const dns = await startDnsStub();
  const results: {
    name: string;
    conn: Awaited<ReturnType<typeof measure>>;
    persistent: Awaited<ReturnType<typeof measure>>;
    node: Awaited<ReturnType<typeof measureWithNodeClient>>;
    sessions: Awaited<ReturnType<typeof measureSessions>>;
  }[] = [];
  try {
    const all: [string, () => Promise<System>][] = [
      ["postfix", () => startPostfix(sink.port, dir, certificate)],
      ["haraka", () => startHaraka(sink.port, dir, certificate, "smtp_forward")],
      ["haraka-queue", () => startHaraka(sink.port, dir, certificate, "queue")],
      ["moat", () => startMoat(sink.port, true, dns.address, certificate)],
      ["moat-nofilter", () => startMoat(sink.port, false, dns.address, certificate)],
    ];
    const only = process.env.BENCH_SYSTEMS?.split(",");
    const starters = all.filter(([key]) => !only || only.includes(key)).map(([, start]) => start);
    for (const start of starters) {
      const system = await start();
      try {
        const sessions = await measureSessions(system);
        const conn = await measure(system, sink, false);
        const persistent = await measure(system, sink, true);
        const node = await measureWithNodeClient(system, sink, persistent.rate);
        results.push({ name: system.name, conn, persistent, node, sessions });
        console.error(`${system.name}: measured`);
      } finally {
        await system.stop();
      }
    }
  } finally {
    sink.stop();
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log("Moat vs peers: relay throughput");
  console.log(
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}; load smtp-source -s ${SESSIONS} -l ${SIZE} -m ${MESSAGES}, and the Node client (${SESSIONS} persistent sessions); sink smtp-sink`,
  );
  const postfix = results.find((r) => r.name === "postfix");
  const haraka = results.find((r) => r.name === "haraka (smtp_forward)");
  const ratio = (value: number, pick: (r: (typeof results)[number]) => number) =>
    [
      ...(postfix ? [`${(value / pick(postfix)).toFixed(2)}x Postfix`] : []),
      ...(haraka ? [`${(value / pick(haraka)).toFixed(2)}x Haraka`] : []),
    ].join(", ") || "no peer measured";
  const failures = (r: LoadResult) => (r.failed ? ` [${r.failed} failed: ${r.firstError}]` : "");
  for (const r of results) {
    console.log(`${r.name}`);
    console.log(
      `  smtp-source conn/msg  ${r.conn.rate.toFixed(0).padStart(5)} msgs/s (${ratio(r.conn.rate, (x) => x.conn.rate)}; ${r.conn.cpuPerMsg.toFixed(2)} ms CPU/msg)`,
    );
    console.log(
      `  smtp-source persist.  ${r.persistent.rate.toFixed(0).padStart(5)} msgs/s (${ratio(r.persistent.rate, (x) => x.persistent.rate)}; ${r.persistent.cpuPerMsg.toFixed(2)} ms CPU/msg)`,
    );
    console.log(
      `  node client plain     ${r.node.plain.rate.toFixed(0).padStart(5)} msgs/s accepted, ${r.node.plain.endToEnd.toFixed(0)} end to end (${ratio(r.node.plain.endToEnd, (x) => x.node.plain.endToEnd)}; ${r.node.plain.cpuPerMsg.toFixed(2)} ms CPU/msg)${failures(r.node.plain)}`,
    );
    console.log(
      `  node client STARTTLS  ${r.node.tls.rate.toFixed(0).padStart(5)} msgs/s accepted, ${r.node.tls.endToEnd.toFixed(0)} end to end (${ratio(r.node.tls.endToEnd, (x) => x.node.tls.endToEnd)}; ${r.node.tls.cpuPerMsg.toFixed(2)} ms CPU/msg)${failures(r.node.tls)}`,
    );
    console.log(
      `  latency at half load  ${r.node.halfRate.toFixed(0)} msgs/s offered (half of the persistent smtp-source rate): p50 ${r.node.half.p50Ms.toFixed(1)} ms, p99 ${r.node.half.p99Ms.toFixed(1)} ms${failures(r.node.half)}`,
    );
    console.log(
      `  ${HELD_SESSIONS} sessions held     ${r.sessions.open} open (${r.sessions.errors} failed), fresh start: PSS ${r.sessions.idleMb.toFixed(0)} MB idle -> ${r.sessions.heldMb.toFixed(0)} MB`,
    );
    console.log(`  peak PSS under load   ${Math.max(r.conn.rssMb, r.persistent.rssMb).toFixed(0)} MB`);
  }
  console.log(
    "targets: the full pipeline at least as fast as Postfix and at least twice Haraka's smtp_forward; p99 <= 20 ms at half load; <= 150 MB RSS with 500 sessions",
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
