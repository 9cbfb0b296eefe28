/**
 * Real rspamd and clamd from Debian for tests and benchmarks, started on loopback in a
 * temporary directory and stopped by the caller (killed if they do not exit).
 *
 * rspamd runs offline as shared/notes/rspamd-and-spamassassin-offline.md describes: every DNS
 * query gets SERVFAIL at once from a stub (so nothing waits on the network), and fuzzy_check,
 * hfilter's MAIL FROM host check and spf are off. Its hyperscan cache lives in one directory
 * under the system temp dir, so only the first start of a run compiles (~20 s).
 *
 * clamd gets a database made here — signatures cannot be downloaded — holding one body
 * signature for the EICAR test string, `Moat.Test.EICAR`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DnsServer, startDnsServer } from "./dns-server";
import { freePort } from "./gateway-process";

const START_TIMEOUT_MS = 120_000;
export const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

export interface Engine {
  readonly pid: number;
  readonly stop: () => Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, what: string, child: ChildProcess, output: () => string) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}\n${output()}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  child.kill("SIGKILL");
  throw new Error(`${what} did not start in ${START_TIMEOUT_MS} ms\n${output()}`);
}

function stopper(child: ChildProcess, cleanup: () => Promise<void> | void): () => Promise<void> {
  return async () => {
    if (child.exitCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await cleanup();
  };
}

export async function startRspamd(): Promise<Engine & { readonly url: string; readonly dns: DnsServer }> {
  const dns = await startDnsServer({}, ["*"]);
  const dir = mkdtempSync(join(tmpdir(), "moat-rspamd-"));
  const local = join(dir, "local.d");
  // Kept between starts on purpose: rspamd compiles its hyperscan databases into DBDIR
  // (hs_cache_dir, ~48 MB), ~16-18 s on a first start and reused from here after.
  const dbDir = join(tmpdir(), "moat-rspamd-db");
  for (const d of [local, join(dir, "run"), join(dir, "log"), dbDir]) mkdirSync(d, { recursive: true });
  const [normal, controller, proxy] = [await freePort(), await freePort(), await freePort()];
  const files: Record<string, string> = {
    "options.inc": `dns { nameserver = ["${dns.address}"]; timeout = 0.5s; retransmits = 1; }\n`,
    "worker-normal.inc": `bind_socket = "127.0.0.1:${normal}";\ncount = 1;\n`,
    "worker-controller.inc": `bind_socket = "127.0.0.1:${controller}";\ncount = 1;\n`,
    "worker-proxy.inc": `bind_socket = "127.0.0.1:${proxy}";\ncount = 1;\n`,
    "fuzzy_check.conf": "enabled = false;\n",
    "hfilter.conf": "from_enabled = false;\n",
    "spf.conf": "enabled = false;\n",
    "logging.inc": `type = "file";\nfilename = "${join(dir, "log", "rspamd.log")}";\nlevel = "warning";\n`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(local, name), text);
  for (const d of [join(dir, "run"), join(dir, "log"), dbDir]) chownSync(d, uid("_rspamd"), gid("_rspamd"));
  const child = spawn(
    "rspamd",
    [
      "-f",
      "-u",
      "_rspamd",
      "-g",
      "_rspamd",
      "-c",
      "/etc/rspamd/rspamd.conf",
      "--var",
      `LOCAL_CONFDIR=${dir}`,
      "--var",
      `DBDIR=${dbDir}`,
      "--var",
      `RUNDIR=${join(dir, "run")}`,
      "--var",
      `LOGDIR=${join(dir, "log")}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${normal}`;
  await waitFor(
    async () => (await fetch(`${url}/ping`)).ok,
    "rspamd",
    child,
    () => output,
  );
  return {
    pid: child.pid ?? 0,
    url,
    dns,
    stop: stopper(child, async () => {
      await dns.close();
      rmSync(dir, { recursive: true, force: true });
    }),
  };
}

function uid(user: string): number {
  return Number(execFileSync("id", ["-u", user]).toString().trim());
}
function gid(user: string): number {
  return Number(execFileSync("id", ["-g", user]).toString().trim());
}

function clamdPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let reply = "";
    socket.on("data", (d: Buffer) => {
      reply += d.toString();
      if (reply.includes("\0")) {
        socket.end();
        resolve(reply.startsWith("PONG"));
      }
    });
    socket.on("error", () => resolve(false));
    socket.on("connect", () => socket.write("zPING\0"));
  });
}

export async function startClamd(): Promise<Engine & { readonly host: string; readonly port: number }> {
  const dir = mkdtempSync(join(tmpdir(), "moat-clamd-"));
  const db = join(dir, "db");
  mkdirSync(db);
  writeFileSync(join(db, "moat-test.ndb"), `Moat.Test.EICAR:0:*:${Buffer.from(EICAR).toString("hex")}\n`);
  const port = await freePort();
  const conf = join(dir, "clamd.conf");
  writeFileSync(
    conf,
    [
      "Foreground yes",
      `TCPSocket ${port}`,
      "TCPAddr 127.0.0.1",
      `DatabaseDirectory ${db}`,
      `PidFile ${join(dir, "clamd.pid")}`,
      `TemporaryDirectory ${dir}`,
      "LogSyslog no",
      "StreamMaxLength 100M",
      "MaxThreads 4",
      "ScanMail yes",
      "ScanArchive yes",
      "",
    ].join("\n"),
  );
  const child = spawn("clamd", ["--config-file", conf], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  await waitFor(
    () => clamdPing(port),
    "clamd",
    child,
    () => output,
  );
  return {
    pid: child.pid ?? 0,
    host: "127.0.0.1",
    port,
    stop: stopper(child, () => rmSync(dir, { recursive: true, force: true })),
  };
}
