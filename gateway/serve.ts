/**
 * `moat serve`: resolve the config, start the development mailbox when running the embedded
 * default, start the gateway, print where everything is, and close gracefully on SIGTERM or
 * SIGINT (queued mail stays on disk).
 */
import { join } from "node:path";
import { resolveConfig } from "./config-source";
import { type DevMailbox, startDevMailbox } from "./dev-mailbox";
import type { Env } from "./env";
import { createLogger, parseLogLevel } from "./log";
import { keepLoopCpuApart } from "./loop-cpu";
import { startGateway } from "./main";
import { NODE_FLAGS, missingNodeFlags } from "./v8-tuning";

export async function serve(configFile: string | undefined, env: Env): Promise<void> {
  const log = createLogger({ level: parseLogLevel(env.MOAT_LOG_LEVEL) });
  const missing = missingNodeFlags();
  if (missing.length > 0)
    log.warn(
      "node was started without the gateway's V8 flags: without them its young generation and V8's helper threads are node's defaults, and the latency tail is longer (README, Benchmarks)",
      { missing: missing.join(" "), start: `node ${NODE_FLAGS.join(" ")} dist/gateway/cli.js serve` },
    );
  const resolved = resolveConfig(configFile, env);
  const { config } = resolved;

  // The embedded default's smart host is the development mailbox; run it unless the
  // smart host was pointed elsewhere.
  let mailbox: DevMailbox | undefined;
  if (resolved.origin === "embedded" && !resolved.overrides.includes("MOAT_SMART_HOST")) {
    mailbox = await startDevMailbox({ ...config.delivery.smartHost, dir: join(config.dataDir, "dev-mailbox") });
  }
  const gateway = await startGateway(config, log).catch(async (error: unknown) => {
    await mailbox?.close();
    throw error;
  });
  // After the start, when the verdict's thread, libuv's pool and the checkpointer are running.
  const loopCpu = await keepLoopCpuApart(config.loopCpu, log, { free: () => gateway.verdictThreadId() });

  const lines = [
    `Moat gateway for ${config.customer} (${config.domains.map((d) => d.name).join(", ")})`,
    `  config:        ${resolved.description}${resolved.overrides.length ? ` + ${resolved.overrides.join(", ")}` : ""}`,
    `  SMTP:          listening on ${gateway.smtp.address}:${gateway.smtp.port}`,
    `  HTTP:          http://${gateway.http.address}:${gateway.http.port}/healthz`,
    `  tracker:       http://${gateway.http.address}:${gateway.http.port}/ ${
      config.access.admins.length > 0
        ? `(sign in as ${config.access.admins.map((a) => a.name).join(", ")})`
        : "(no accounts: add moat:access.admins, see `npm run moat -- password`)"
    }`,
    `  queue:         ${join(config.dataDir, "queue")}`,
    `  smart host:    ${config.delivery.smartHost.host}:${config.delivery.smartHost.port} (TLS ${config.delivery.tls})`,
    ...(mailbox
      ? [
          `  dev mailbox:   delivered mail is written to ${mailbox.dir}/ (one .eml per message)`,
          `  try:           swaks --server ${gateway.smtp.address}:${gateway.smtp.port} --to ${config.directory.users[0]?.address ?? "someone@" + config.domains[0]?.name}`,
        ]
      : []),
  ];

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    loopCpu.stop();
    gateway
      .close()
      .then(() => mailbox?.close())
      .then(
        () => process.exit(0),
        (error: Error) => {
          log.error("shutdown failed", { error: error.message });
          process.exit(1);
        },
      );
  };
  process.on("SIGHUP", () => gateway.reloadTls());
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  // Announced only once the signals are handled: a SIGHUP sent as soon as the ports are known
  // (an orchestrator, a test) must reload the certificate, not end the process.
  process.stdout.write(`${lines.join("\n")}\n`);
}
