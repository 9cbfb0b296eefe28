/**
 * Where `serve` (and the other commands taking --config) get the gatewayConfig document:
 * `--config FILE` (the JSON of `pulumi stack output --json --show-secrets`, or the document
 * alone), else env `MOAT_CONFIG` (the same JSON inline), else the embedded default (the
 * example stack on this machine). Then the MOAT_* overrides.
 *
 * Errors name the source: `--config out.json: not JSON (...)`.
 */
import { readFileSync } from "node:fs";
import { type GatewayConfig, GatewayConfigError, parseGatewayConfig } from "./config";
import { embeddedDefaultConfig } from "./default-config";
import { type Env, applyEnvOverrides } from "./env";

export type ConfigOrigin = "file" | "env" | "embedded";

export interface ResolvedConfig {
  readonly origin: ConfigOrigin;
  /** For the start-up line: the file name, `MOAT_CONFIG`, or the embedded stack. */
  readonly description: string;
  readonly config: GatewayConfig;
  readonly overrides: readonly string[];
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new GatewayConfigError([`${where}: not JSON (${(error as Error).message})`]);
  }
}

export function resolveConfig(configFile: string | undefined, env: Env): ResolvedConfig {
  let origin: ConfigOrigin;
  let description: string;
  let json: unknown;
  if (configFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(configFile, "utf8");
    } catch (error) {
      throw new GatewayConfigError([
        `--config ${configFile}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      ]);
    }
    origin = "file";
    description = configFile;
    json = parseJson(text, `--config ${configFile}`);
  } else if (env.MOAT_CONFIG) {
    origin = "env";
    description = "MOAT_CONFIG";
    json = parseJson(env.MOAT_CONFIG, "MOAT_CONFIG");
  } else {
    origin = "embedded";
    description = "the embedded default (stacks/Pulumi.example.yaml)";
    json = embeddedDefaultConfig();
  }
  const { config, applied } = applyEnvOverrides(parseGatewayConfig(json), env);
  return { origin, description, config, overrides: applied };
}
