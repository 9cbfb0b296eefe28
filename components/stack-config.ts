/**
 * Loads one customer stack: the `moat:*` settings plus the files they point at (users CSV),
 * from either Pulumi's runtime config (the program) or a `stacks/Pulumi.<name>.yaml` file
 * (the embedded default, `check` and `plan`). Both go through parseSettings and the same file
 * readers, so the gateway's embedded default is the example stack, not a second copy of it.
 *
 * Fails with SettingsError listing every problem, file problems with line and column.
 * No Pulumi import: the gateway runtime uses this too.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { StaticUser } from "../gateway/config";
import { formatCsvProblem } from "../gateway/csv";
import { parseUsersCsv } from "../gateway/directory/users-csv";
import { type Rule, parseRulesCsv } from "../gateway/rules/rules";
import { spfProblems } from "./dns-records";
import { type Settings, SettingsError, parseSettings } from "./settings";

export interface LoadedStack {
  readonly name: string;
  readonly settings: Settings;
  readonly users: readonly StaticUser[];
  /** Global rules (stacks/global-rules.csv, every stack) then the customer's (moat:rules). */
  readonly rules: readonly Rule[];
}

export const STACKS_DIR = "stacks";
/** MSP-wide rules, applied to every stack; optional. */
export const GLOBAL_RULES_FILE = `${STACKS_DIR}/global-rules.csv`;

/**
 * The project directory, where Pulumi.yaml and package.json live: the parent of components/,
 * or of dist/components/ in the compiled gateway (`npm run build`).
 */
export const PROJECT_DIR =
  basename(join(__dirname, "..")) === "dist" ? join(__dirname, "..", "..") : join(__dirname, "..");

export function stackFilePath(projectDir: string, stackName: string): string {
  return join(projectDir, STACKS_DIR, `Pulumi.${stackName}.yaml`);
}

export function listStacks(projectDir: string): string[] {
  return readdirSync(join(projectDir, STACKS_DIR))
    .map((file) => /^Pulumi\.(.+)\.yaml$/.exec(file)?.[1])
    .filter((name): name is string => name !== undefined)
    .sort();
}

/** The `config:` map of a stack file, as written (structured values stay structured). */
export function readStackFile(projectDir: string, stackName: string): Record<string, unknown> {
  const path = stackFilePath(projectDir, stackName);
  if (!existsSync(path)) throw new SettingsError([`${path}: no such stack file`]);
  let document: unknown;
  try {
    document = parseYaml(readFileSync(path, "utf8"));
  } catch (error) {
    throw new SettingsError([`${path}: not valid YAML: ${(error as Error).message}`]);
  }
  const config = (document as { config?: unknown } | null)?.config ?? {};
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new SettingsError([`${path}: "config" must be a map of keys to values`]);
  }
  return config as Record<string, unknown>;
}

/** Settings plus the users file; every problem of both in one SettingsError. */
export function loadStack(name: string, config: Readonly<Record<string, unknown>>, projectDir: string): LoadedStack {
  const settings = parseSettings(config);
  const problems: string[] = [];
  let users: readonly StaticUser[] = [];
  if (settings.users !== undefined) {
    const path = join(projectDir, settings.users);
    if (!existsSync(path)) {
      problems.push(`moat:users: ${settings.users}: no such file`);
    } else {
      const result = parseUsersCsv(
        readFileSync(path, "utf8"),
        settings.domains.map((d) => d.name),
      );
      problems.push(
        ...result.problems.map((p) => `moat:users: ${formatCsvProblem(settings.users ?? "", p, result.columns)}`),
      );
      users = result.users;
    }
  }
  // No "users required" or cut-over check here: static verification uses the directory synced
  // from Entra ID (the stack always has the app for it); the spreadsheet only adds to it.
  problems.push(...spfProblems(settings, settings.gateway.egressIps));
  const domains = settings.domains.map((d) => d.name);
  const rules: Rule[] = [];
  const readRules = (file: string, scope: "global" | "customer", label: string) => {
    const result = parseRulesCsv(readFileSync(join(projectDir, file), "utf8"), { file, scope }, domains);
    problems.push(...result.problems.map((p) => `${label}${formatCsvProblem(file, p, result.columns)}`));
    rules.push(...result.rules);
  };
  if (existsSync(join(projectDir, GLOBAL_RULES_FILE))) readRules(GLOBAL_RULES_FILE, "global", "");
  if (settings.rules !== undefined) {
    if (!existsSync(join(projectDir, settings.rules))) problems.push(`moat:rules: ${settings.rules}: no such file`);
    else readRules(settings.rules, "customer", "moat:rules: ");
  }
  if (problems.length > 0) throw new SettingsError(problems);
  return { name, settings, users, rules };
}

export function loadStackFile(projectDir: string, stackName: string): LoadedStack {
  return loadStack(stackName, readStackFile(projectDir, stackName), projectDir);
}
