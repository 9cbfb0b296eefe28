/**
 * The systems bench/peers.ts compares, each started on a free loopback port and relaying to
 * the same sink: Postfix's smtp-sink, Postfix as a plain relay, Haraka (smtp_forward, the same
 * with TCP_NODELAY, or its own queue), and `moat serve`. What each uses of the machine: proc-usage.ts.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NODE_FLAGS } from "../gateway/v8-tuning";
import {
  LOAD_TEST_LIMITS,
  compiledGateway,
  freePort,
  startGatewayProcess,
  writeTestConfig,
} from "../test/helpers/gateway-process";
import { spawnInCpuQuota } from "./cpu-quota";

/** Sessions the memory measurement holds open at once (Postfix needs a process for each). */
export const HELD_SESSIONS = 500;

export interface Certificate {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface Sink {
  readonly port: number;
  count(): number;
  stop(): void;
}

/**
 * Postfix's smtp-source sending `messages` to 127.0.0.1:`port` from `sessions` sessions at once:
 * a connection per message, or persistent sessions (`-d`). Its output is ignored.
 */
export function smtpSource(
  port: number,
  options: { sessions: number; size: number; messages: number; from: string; to: string; persistent: boolean },
): ChildProcess {
  const { sessions, size, messages, from, to, persistent } = options;
  const args = ["-s", String(sessions), "-l", String(size), "-m", String(messages), "-f", from, "-t", to];
  if (persistent) args.push("-d");
  return spawn("smtp-source", [...args, `127.0.0.1:${port}`], { stdio: "ignore" });
}

/**
 * Waits until the sink's count reaches `count`, looking every `everyMs` (and calling `each`
 * then); true if it did within `timeoutMs`.
 */
export async function sinkReaches(
  sink: Sink,
  count: number,
  timeoutMs: number,
  poll: { readonly everyMs?: number; readonly each?: () => void } = {},
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (sink.count() < count && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, poll.everyMs ?? 50));
    poll.each?.();
  }
  return sink.count() >= count;
}

export async function startSmtpSink(): Promise<Sink> {
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

export interface System {
  readonly name: string;
  readonly port: number;
  /** Root of the system's process tree, for CPU and memory. */
  readonly pid: number;
  /** Moat's GET /metrics, for its own accept times by stage. */
  readonly metricsUrl?: string;
  stop(): Promise<void>;
}

export async function startPostfix(sinkPort: number, dir: string, certificate: Certificate): Promise<System> {
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
  // Postfix runs an alternate configuration only when the default one lists it. This run's
  // directory replaces an earlier run's line, so lines do not pile up across runs.
  // (Debian's "No configuration" install has no main.cf at all.)
  const mainCf = "/etc/postfix/main.cf";
  const main = existsSync(mainCf) ? readFileSync(mainCf, "utf8") : "";
  const kept = main.split("\n").filter((line) => !/^\s*alternate_config_directories\s*=/.test(line));
  while (kept.length > 0 && kept[kept.length - 1] === "") kept.pop();
  writeFileSync(mainCf, [...kept, `alternate_config_directories = ${config}`, ""].join("\n"));
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
 * How Haraka queues: forwarding during the DATA (smtp_forward), or its own disk queue.
 * `smtp_forward-nodelay` is smtp_forward from a copy of Haraka whose outbound sockets have
 * TCP_NODELAY on (harakaWithNoDelay): the same peer without its stall of 40 ms a message.
 */
type HarakaMode = "smtp_forward" | "smtp_forward-nodelay" | "queue";

/** Haraka's name in the report. */
export const harakaName = (mode: HarakaMode) =>
  mode === "smtp_forward-nodelay" ? "haraka (smtp_forward, TCP_NODELAY)" : `haraka (${mode})`;

/** The line of Haraka's tls_socket.js that makes every outbound socket (smtp_forward's among them). */
const HARAKA_CONNECT = "const cryptoSocket = net.connect(conn_options)";
/** What harakaWithNoDelay adds after it (and how a patched copy is known). */
const HARAKA_NODELAY_LINE = "cryptoSocket.setNoDelay(true) // bench: TCP_NODELAY";

/**
 * Haraka's tls_socket.js with TCP_NODELAY set on each socket it connects. As published (3.3.4,
 * the latest), its outbound sockets keep Nagle's algorithm on, so smtp_forward's end of the data
 * (".", written after the body) waits for the sink to acknowledge the body, which Linux's delayed
 * ACK holds back 40 ms: 42 ms from the client's data to Haraka's 250 on an idle machine, 2 ms
 * with TCP_NODELAY (README "Benchmarks"). Throws when the line is not there exactly once.
 */
export function harakaWithNoDelay(source: string): string {
  const at = source.indexOf(HARAKA_CONNECT);
  if (at < 0 || source.indexOf(HARAKA_CONNECT, at + 1) >= 0)
    throw new Error(`Haraka's tls_socket.js: "${HARAKA_CONNECT}" is not there exactly once; cannot set TCP_NODELAY`);
  const indent = source.slice(source.lastIndexOf("\n", at) + 1, at);
  return source.replace(HARAKA_CONNECT, `${HARAKA_CONNECT}\n${indent}${HARAKA_NODELAY_LINE}`);
}

/**
 * Haraka from npm, installed once per run. `smtp_forward`: each message is forwarded to the
 * sink during the client's DATA (no local queue). `queue`: connections are marked as relaying,
 * so Haraka writes each message to its own disk queue and its outbound engine delivers it
 * (a tiny plugin points every domain's MX at the sink; outbound.ini allows a loopback MX).
 */
export async function startHaraka(
  sinkPort: number,
  dir: string,
  certificate: Certificate,
  mode: HarakaMode,
): Promise<System> {
  const port = await freePort();
  const noDelay = mode === "smtp_forward-nodelay";
  const home = join(dir, noDelay ? "haraka-nodelay" : "haraka"); // the copy patched apart from the stock one
  mkdirSync(home, { recursive: true });
  const bin = join(home, "node_modules", ".bin", "haraka");
  if (!existsSync(bin))
    execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", home, "Haraka@3.3.4"], {
      stdio: "ignore",
    });
  if (noDelay) {
    const tlsSocket = join(home, "node_modules", "Haraka", "tls_socket.js");
    const source = readFileSync(tlsSocket, "utf8");
    if (!source.includes(HARAKA_NODELAY_LINE)) writeFileSync(tlsSocket, harakaWithNoDelay(source));
  }
  const site = join(home, `site-${mode}`);
  rmSync(site, { recursive: true, force: true }); // a fresh site (and queue) at every start
  execFileSync(bin, ["-i", site], { stdio: "ignore" });
  writeFileSync(join(site, "config", "smtp.ini"), `listen=127.0.0.1:${port}\nnodes=0\n`);
  writeFileSync(join(site, "config", "tls_cert.pem"), readFileSync(certificate.certFile));
  writeFileSync(join(site, "config", "tls_key.pem"), readFileSync(certificate.keyFile));
  // Without a dhparams.pem Haraka's tls plugin runs `openssl dhparam 2048` at start-up, which
  // keeps a core busy for up to 30 s, into the measured runs (every Haraka figure before
  // this was taken beside it). RFC 7919's ffdhe2048 group is a standard one and instant.
  execFileSync("openssl", [
    "genpkey",
    "-genparam",
    "-algorithm",
    "DH",
    "-pkeyopt",
    "group:ffdhe2048",
    "-out",
    join(site, "config", "dhparams.pem"),
  ]);
  writeFileSync(join(site, "config", "host_list"), "northwind.example\n");
  writeFileSync(join(site, "config", "log.ini"), "[main]\nlevel=error\n");
  if (mode !== "queue") {
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
    name: harakaName(mode),
    port,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill("SIGKILL");
    },
  };
}

interface MoatVariant {
  /** The system's name in the report. */
  readonly name: string;
  readonly filters: boolean;
  readonly scanThread: boolean | "auto";
  /** Held to this many CPUs' time by a cgroup quota (cpu-quota.ts), as a container is. */
  readonly cpus?: number;
}

/** Moat as the bench runs it. */
export const MOAT_VARIANTS = {
  full: { name: "moat (spool + verdict + delivery)", filters: true, scanThread: false },
  thread: { name: "moat (the same, verdict in its own thread)", filters: true, scanThread: true },
  off: { name: "moat (filters off)", filters: false, scanThread: false },
  // The Azure hosting's default container: one vCPU, scanThread and loopCpu left to choose.
  onecpu: {
    name: "moat (one CPU's quota, as the Azure hosting's default)",
    filters: true,
    scanThread: "auto",
    cpus: 1,
  },
} as const satisfies Record<string, MoatVariant>;

let compiled: string[] | undefined;

/** One of MOAT_VARIANTS, compiled, relaying to the sink. */
export async function startMoat(
  sinkPort: number,
  which: keyof typeof MOAT_VARIANTS,
  dnsAddress: string,
  certificate: Certificate,
): Promise<System> {
  const variant: MoatVariant = MOAT_VARIANTS[which];
  const { file, dir } = writeTestConfig({
    smartHostPort: sinkPort,
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
    // One load generator on one IP: lift the per-client limits that would (rightly) stop it.
    edit: (d) => ({
      ...d,
      filters: { ...d.filters, enabled: variant.filters, scanThread: variant.scanThread },
      // BENCH_MOAT_LOOP_CPU=false: the gateway's threads on any CPU, to measure loopCpu against
      // (not for a container's model, which keeps its defaults).
      ...(process.env.BENCH_MOAT_LOOP_CPU === "false" && variant.cpus === undefined ? { loopCpu: false } : {}),
      smtp: {
        ...d.smtp,
        limits: { ...LOAD_TEST_LIMITS },
      },
    }),
  });
  // What the image runs: the compiled gateway with plain node (built once per bench run).
  compiled ??= compiledGateway();
  // BENCH_MOAT_NODE_FLAGS: node flags for the gateway after those it always gets (a later value
  // of the same flag wins), to measure one.
  const flags = [...NODE_FLAGS, ...(process.env.BENCH_MOAT_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [])];
  // BENCH_MOAT_NODE: another node binary for the gateway (its native modules built for it), to
  // measure a Node.js release with the same load and peers.
  const node = process.env.BENCH_MOAT_NODE || process.execPath;
  const start = () =>
    startGatewayProcess(
      ["--config", file],
      { MOAT_LOG_LEVEL: "error", MOAT_DNS_SERVERS: dnsAddress },
      compiled,
      flags,
      node,
    );
  const quota = variant.cpus ? spawnInCpuQuota(variant.cpus, `moat-bench-${process.pid}`, start) : undefined;
  const gateway = await (quota?.started ?? start()).catch((error: unknown) => {
    try {
      quota?.remove();
    } catch {
      // EBUSY: the gateway is still starting in it; the start's own error is the one to report.
    }
    throw error;
  });
  return {
    name: variant.name,
    port: gateway.smtpPort,
    pid: gateway.child.pid ?? 0,
    metricsUrl: `http://127.0.0.1:${gateway.httpPort}/metrics`,
    stop: async () => {
      await gateway.stop();
      // BENCH_MOAT_STDOUT=FILE: its standard output appended, under its name (V8's --trace-gc,
      // given in BENCH_MOAT_NODE_FLAGS; a run of several gateways writes one section each).
      const keep = process.env.BENCH_MOAT_STDOUT;
      if (keep) appendFileSync(keep, `== ${variant.name}, pid ${gateway.child.pid ?? "?"}\n${gateway.stdout()}`);
      quota?.remove();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
