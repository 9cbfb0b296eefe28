/**
 * Benchmark (not a test): Moat side by side with its peers, in one run on this machine
 * (issue #8). Load: Postfix's `smtp-source` (20 sessions, 10 KB messages, one recipient),
 * once with a new connection per message and once with persistent sessions (`-d`). Every
 * system relays to the same sink, Postfix's `smtp-sink`; a run ends when the sink has every
 * message. Systems:
 *
 *   postfix       Postfix as a plain relay (its queue, fsync on, no filter), from Debian
 *   haraka        Haraka from npm with smtp_forward (no local queue), one process
 *   moat-full     `moat serve`: spool (fsync) + the verdict without external engines + delivery
 *   moat-nofilter the same with filters.enabled=false
 *
 * Reported: messages/s, CPU ms per message of the system's processes (from /proc), peak RSS,
 * and ratios to Postfix and Haraka. Needs root (Postfix), Debian's postfix package and the
 * npm registry (Haraka is installed into a temporary directory).
 *
 *   tsx bench/peers.ts [MESSAGES]
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
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { startDnsServer } from "../test/helpers/dns-server";
import { freePort, startGatewayProcess, writeTestConfig, LOAD_TEST_LIMITS } from "../test/helpers/gateway-process";

const MESSAGES = Number(process.argv[2] ?? 2000);
const SESSIONS = 20;
const SIZE = 10240;
const CLK_TCK_MS = 10;

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

/** CPU (ms) and RSS (kB) of a process tree: the root and every descendant. */
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
    cpuMs += (Number(fields[11]) + Number(fields[12])) * CLK_TCK_MS;
    rssKb += Number(fields[21]) * 4;
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

async function startPostfix(sinkPort: number, dir: string): Promise<System> {
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
      "smtpd_tls_security_level = none",
      "default_process_limit = 100",
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

async function startHaraka(sinkPort: number, dir: string): Promise<System> {
  const port = await freePort();
  const home = join(dir, "haraka");
  mkdirSync(home, { recursive: true });
  execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", home, "Haraka@3.3.4"], {
    stdio: "ignore",
  });
  const bin = join(home, "node_modules", ".bin", "haraka");
  const site = join(home, "site");
  execFileSync(bin, ["-i", site], { stdio: "ignore" });
  writeFileSync(join(site, "config", "smtp.ini"), `listen=127.0.0.1:${port}\nnodes=0\n`);
  writeFileSync(join(site, "config", "plugins"), "rcpt_to.in_host_list\nqueue/smtp_forward\n");
  writeFileSync(join(site, "config", "host_list"), "northwind.example\n");
  writeFileSync(
    join(site, "config", "smtp_forward.ini"),
    `host=127.0.0.1\nport=${sinkPort}\nenable_tls=false\nmax_connections=100\n`,
  );
  writeFileSync(join(site, "config", "log.ini"), "[main]\nlevel=error\n");
  const child: ChildProcess = spawn(bin, ["-c", site], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 2500));
  return {
    name: "haraka (smtp_forward)",
    port,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill("SIGKILL");
    },
  };
}

async function startMoat(sinkPort: number, filters: boolean, dnsAddress: string): Promise<System> {
  const { file, dir } = writeTestConfig({
    smartHostPort: sinkPort,
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
  const args = [
    "-s",
    String(SESSIONS),
    "-l",
    String(SIZE),
    "-m",
    String(MESSAGES),
    "-f",
    "sender@outside.example",
    "-t",
    "anna.berg@northwind.example",
  ];
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

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "moat-bench-peers-"));
  execFileSync("chmod", ["755", dir]);
  const sink = await startSmtpSink();
  const dns = await startDnsServer({});
  const results: {
    name: string;
    conn: Awaited<ReturnType<typeof measure>>;
    persistent: Awaited<ReturnType<typeof measure>>;
  }[] = [];
  try {
    const starters: (() => Promise<System>)[] = [
      () => startPostfix(sink.port, dir),
      () => startHaraka(sink.port, dir),
      () => startMoat(sink.port, true, dns.address),
      () => startMoat(sink.port, false, dns.address),
    ];
    for (const start of starters) {
      const system = await start();
      try {
        const conn = await measure(system, sink, false);
        const persistent = await measure(system, sink, true);
        results.push({ name: system.name, conn, persistent });
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
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}; load smtp-source -s ${SESSIONS} -l ${SIZE} -m ${MESSAGES}; sink smtp-sink`,
  );
  const postfix = results.find((r) => r.name === "postfix");
  const haraka = results.find((r) => r.name.startsWith("haraka"));
  for (const r of results) {
    const ratio = (mode: "conn" | "persistent") =>
      `${postfix ? `${(r[mode].rate / postfix[mode].rate).toFixed(2)}x Postfix` : ""}${haraka ? `, ${(r[mode].rate / haraka[mode].rate).toFixed(2)}x Haraka` : ""}`;
    console.log(
      `${r.name.padEnd(34)} conn/msg ${r.conn.rate.toFixed(0).padStart(5)} msgs/s (${ratio("conn")}; ${r.conn.cpuPerMsg.toFixed(2)} ms CPU/msg)   persistent ${r.persistent.rate.toFixed(0).padStart(5)} msgs/s (${ratio("persistent")}; ${r.persistent.cpuPerMsg.toFixed(2)} ms CPU/msg)   peak RSS ${Math.max(r.conn.rssMb, r.persistent.rssMb).toFixed(0)} MB`,
    );
  }
  console.log("targets: the full pipeline at least as fast as Postfix and at least twice Haraka's smtp_forward");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
