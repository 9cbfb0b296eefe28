/**
 * `moat sync --config FILE [--full]`: one directory sync now, from the CLI, into the same
 * state a running gateway uses (`<dataDir>/directory/`), which picks it up within seconds.
 * `--full` is "clear cache & full sync": the saved delta links are ignored and the tenant is
 * read again from scratch. Exits 1 when the run failed or another run holds the lock.
 */
import { join } from "node:path";
import { resolveConfig } from "./config-source";
import { GatewayConfigError } from "./config";
import { recordsFromStaticUsers } from "./directory/directory";
import { createGraphReader } from "./directory/graph-client";
import { createDirectorySync } from "./directory/sync";
import type { Env } from "./env";
import { createLogger, parseLogLevel } from "./log";
import { createDirectoryStateStore } from "./store/directory-state";

export async function syncOnce(
  configFile: string | undefined,
  full: boolean,
  env: Env,
  print: (line: string) => void,
): Promise<number> {
  const { config } = resolveConfig(configFile, env);
  if (!config.graph)
    throw new GatewayConfigError([
      "graph: the gatewayConfig has no Entra ID app; directory sync needs one (the Pulumi program creates it)",
    ]);
  const log = createLogger({ level: parseLogLevel(env.MOAT_LOG_LEVEL ?? "warn") });
  const sync = createDirectorySync({
    read: createGraphReader(config.tenantId, config.graph),
    domains: config.domains.map((d) => d.name),
    staticRecords: recordsFromStaticUsers(config.directory.users),
    store: createDirectoryStateStore(join(config.dataDir, "directory")),
    log,
  });
  const outcome = await sync.run({ full });
  if (outcome.ok) {
    print(
      `directory sync ${full ? "(full) " : ""}done in ${(outcome.durationMs / 1000).toFixed(1)} s: ` +
        `${outcome.users} users (${outcome.modes.users}), ${outcome.groups} groups (${outcome.modes.groups}), ` +
        `${outcome.addresses} addresses, ${outcome.changes} objects read`,
    );
    return 0;
  }
  print(`directory sync failed: ${outcome.error}; the previous directory stays in force`);
  return 1;
}
