/**
 * Runs a TypeScript entry in a child process through tsx (as `pulumi up` and `npm run moat`
 * run the code), bounded in time: a child still running at the limit is killed.
 * `runOfflineChild` reads an offline run's one JSON document from its stdout; a child that
 * prints no result becomes a run with `error`, carrying the end of its stderr.
 */
import { spawn } from "node:child_process";
import { PROJECT_DIR } from "../stack-config";
import type { OfflineRun } from "./mocks";

const RUN_TIMEOUT_MS = 120_000;

export interface ChildResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runTsx(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = RUN_TIMEOUT_MS,
): Promise<ChildResult> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function runOfflineChild(
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<OfflineRun> {
  const { stdout, stderr } = await runTsx(script, args, env);
  try {
    const run = JSON.parse(stdout) as Partial<OfflineRun>;
    return { registered: run.registered ?? [], outputs: run.outputs ?? {}, ...(run.error ? { error: run.error } : {}) };
  } catch {
    return {
      registered: [],
      outputs: {},
      error: `the offline run printed no result: ${stderr.trim().split("\n").slice(-3).join(" ")}`,
    };
  }
}
