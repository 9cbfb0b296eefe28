/**
 * Runs the Pulumi program under mocks in a child process (program-runner.ts, through tsx
 * as `pulumi up` runs it) and returns what it registered and exported.
 */
import { join } from "node:path";
import { runOfflineChild } from "../../components/offline/child";
import type { OfflineRun, RegisteredResource } from "../../components/offline/mocks";
import { PROJECT_DIR, readStackFile } from "../../components/stack-config";

export * from "./pulumi-fakes";
export type { RegisteredResource } from "../../components/offline/mocks";
export type ProgramRun = OfflineRun;

/** Runs are deterministic for a stack name and config, so a test file shares them. */
const runs = new Map<string, Promise<ProgramRun>>();

export function runProgram(
  stackName: string,
  config: Record<string, unknown> = readStackFile(PROJECT_DIR, stackName),
): Promise<ProgramRun> {
  const key = JSON.stringify([stackName, config]);
  const run = runs.get(key) ?? spawnProgram(stackName, config);
  runs.set(key, run);
  return run;
}

function spawnProgram(stackName: string, config: Record<string, unknown>): Promise<ProgramRun> {
  return runOfflineChild(join(__dirname, "program-runner.ts"), [], {
    MOAT_TEST_STACK: stackName,
    MOAT_TEST_CONFIG: JSON.stringify(config),
  });
}

export function byType(registered: readonly RegisteredResource[], type: string): RegisteredResource[] {
  return registered.filter((r) => r.type === type);
}

export function exampleConfig(changes: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...readStackFile(PROJECT_DIR, "example"), ...changes };
}
