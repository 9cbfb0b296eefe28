/**
 * Runs `moat serve` as a child process exactly as a user would (tsx, the CLI), with MOAT_*
 * overrides, and waits for its start-up lines. stop() sends SIGTERM and waits; a process
 * that does not exit in time is killed, so tests always end.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChildResult, runTsx } from "../../components/offline/child";
import { buildGatewayConfig } from "../../components/gateway-document";
import { PROJECT_DIR, loadStackFile } from "../../components/stack-config";
import type { GatewayConfigInput } from "../../gateway/config";
import { NODE_FLAGS } from "../../gateway/v8-tuning";

export const ROOT = join(__dirname, "..", "..");
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export interface GatewayProcess {
  readonly smtpPort: number;
  readonly httpPort: number;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly child: ChildProcess;
  stop(): Promise<number | null>;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<ChildResult> {
  return runTsx(join(ROOT, "gateway", "cli.ts"), args, env, START_TIMEOUT_MS);
}

/**
 * Compiles the gateway as the image does (`npm run build`, into dist/) and answers the
 * arguments that start it with plain node: for `startGatewayProcess`, to run what production runs.
 */
export function compiledGateway(): string[] {
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: ROOT,
      stdio: "pipe",
      env: { ...process.env, NODE_OPTIONS: "" }, // a profiler hook meant for the gateway must not profile tsc
    },
  );
  return [join(ROOT, "dist", "gateway", "cli.js")];
}

/**
 * `cli`: how the gateway is started; by default the TypeScript through tsx, as `npm start` does.
 * `nodeFlags`: node's own flags in front, by default those every start of the gateway gives it
 * (v8-tuning.ts), as the image and `npm start` do. `node`: the node binary, by default this one.
 */
export async function startGatewayProcess(
  args: string[],
  env: Record<string, string>,
  cli: string[] = ["--import", "tsx", join(ROOT, "gateway", "cli.ts")],
  nodeFlags: readonly string[] = NODE_FLAGS,
  node: string = process.execPath,
): Promise<GatewayProcess> {
  const child = spawn(node, [...nodeFlags, ...cli, "serve", ...args], {
    cwd: ROOT,
    env: { ...process.env, MOAT_CONFIG: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));

  const ports = await new Promise<{ smtp: number; http: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start in time\n${stdout}\n${stderr}`)),
      START_TIMEOUT_MS,
    );
    const check = () => {
      const smtp = /SMTP:\s+listening on [^\s]+:(\d+)/.exec(stdout);
      const http = /HTTP:\s+http:\/\/[^\s]+:(\d+)\//.exec(stdout);
      if (smtp && http) {
        clearTimeout(timer);
        resolve({ smtp: Number(smtp[1]), http: Number(http[1]) });
      }
    };
    child.stdout!.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code} before listening\n${stdout}\n${stderr}`));
    });
  });

  return {
    smtpPort: ports.smtp,
    httpPort: ports.http,
    stdout: () => stdout,
    stderr: () => stderr,
    child,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A loopback port where nothing listens right now (for a peer that starts later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TestConfig {
  /** The config file to pass as `--config`. */
  readonly file: string;
  readonly dir: string;
  readonly dataDir: string;
}

/**
 * Writes a gatewayConfig for a test: the example stack through the real builder, listening on
 * free loopback ports, data in a fresh temporary directory, delivering to `smartHostPort`.
 * `edit` changes the document (a plain JSON object) before it is written.
 */
export function writeTestConfig(options: {
  readonly smartHostPort: number;
  readonly deliveryTls?: "required" | "allow-plain";
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  readonly edit?: (document: GatewayConfigInput) => GatewayConfigInput;
  /** Wrap it as `pulumi stack output --json --show-secrets` prints it. */
  readonly asStackOutput?: boolean;
}): TestConfig {
  const dir = mkdtempSync(join(tmpdir(), "moat-test-"));
  const dataDir = join(dir, "data");
  const document = buildGatewayConfig(loadStackFile(PROJECT_DIR, "example"), {
    smtpListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    dataDir,
    smartHost: { host: "127.0.0.1", port: options.smartHostPort },
    deliveryTls: options.deliveryTls ?? "allow-plain",
    ...(options.tls ? { tls: options.tls } : {}),
  });
  const edited = options.edit ? options.edit(document) : document;
  const file = join(dir, "config.json");
  writeFileSync(
    file,
    JSON.stringify(
      options.asStackOutput ? { gatewayConfig: edited, mxHost: "mx.northwind.example", appClientId: "x" } : edited,
      null,
      2,
    ),
  );
  return { file, dir, dataDir };
}

/** Fast retries for tests that wait for a redelivery. */
export const FAST_RETRY = { minBackoffMs: 200, maxBackoffMs: 1000, maxQueueLifetimeMs: 3_600_000 } as const;

/** Polls `check` until it holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The queue files (message files, not their recipient side files) in one state of a data dir. */
export function queueFiles(
  dataDir: string,
  state: "incoming" | "deferred" | "hold" | "quarantine" | "corrupt",
): string[] {
  const dir = join(dataDir, "queue", state);
  return existsSync(dir) ? readdirSync(dir).filter((f) => !f.endsWith(".rcpt") && !f.endsWith(".meta")) : [];
}

/** One load generator on one IP: per-client limits lifted that would (rightly) stop it. Benchmarks only. */
export const LOAD_TEST_LIMITS = {
  maxConnections: 1000,
  maxConnectionsPerIp: 1000,
  connectionsPerMinutePerIp: 1_000_000,
  messagesPerMinutePerIp: 1_000_000,
} as const;
