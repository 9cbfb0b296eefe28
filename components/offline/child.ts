/**
 * Runs an offline-run entry (plan-runner.ts, or the tests' runner) in a child process through
 * tsx and reads its one JSON document from stdout. A child that prints no result (crashed,
 * killed at the time limit) becomes a run with `error`, carrying the end of its stderr.
 */
import { spawn } from "node:child_process";
import { PROJECT_DIR } from "../stack-config";
import type { OfflineRun } from "./mocks";

const RUN_TIMEOUT_MS = 120_000;

export async function runOfflineChild(script: string, args: readonly string[], env: Record<string, string> = {}): Promise<OfflineRun> {
  const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: PROJECT_DIR,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
  await new Promise((resolve) => child.on("exit", resolve));
  clearTimeout(timer);
  try {
    const run = JSON.parse(stdout) as Partial<OfflineRun>;
    return { registered: run.registered ?? [], outputs: run.outputs ?? {}, ...(run.error ? { error: run.error } : {}) };
  } catch {
    return { registered: [], outputs: {}, error: `the offline run printed no result: ${stderr.trim().split("\n").slice(-3).join(" ")}` };
  }
}
