/**
 * Runs the Pulumi program under mocks in a child process (program-runner.ts, through tsx
 * as `pulumi up` runs it) and returns what it registered and exported.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { PROJECT_DIR, readStackFile } from "../../components/stack-config";

export * from "./pulumi-fakes";

import type { OfflineRun, RegisteredResource } from "../../components/offline/mocks";
export type { RegisteredResource } from "../../components/offline/mocks";
export type ProgramRun = OfflineRun;

const RUN_TIMEOUT_MS = 60_000;

/** Runs are deterministic for a stack name and config, so a test file shares them. */
const runs = new Map<string, Promise<ProgramRun>>();

export function runProgram(stackName: string, config: Record<string, unknown> = readStackFile(PROJECT_DIR, stackName)): Promise<ProgramRun> {
  const key = JSON.stringify([stackName, config]);
  const run = runs.get(key) ?? spawnProgram(stackName, config);
  runs.set(key, run);
  return run;
}

async function spawnProgram(stackName: string, config: Record<string, unknown>): Promise<ProgramRun> {
  const child = spawn(process.execPath, ["--import", "tsx", join(__dirname, "program-runner.ts")], {
    cwd: PROJECT_DIR,
    env: { ...process.env, MOAT_TEST_STACK: stackName, MOAT_TEST_CONFIG: JSON.stringify(config) },
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
    const run = JSON.parse(stdout) as ProgramRun;
    return { registered: run.registered ?? [], outputs: run.outputs ?? {}, error: run.error };
  } catch {
    throw new Error(`the program runner printed no result\nstdout: ${stdout}\nstderr: ${stderr}`);
  }
}

export function byType(registered: readonly RegisteredResource[], type: string): RegisteredResource[] {
  return registered.filter((r) => r.type === type);
}

export function exampleConfig(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...readStackFile(PROJECT_DIR, "example"), ...changes };
}
