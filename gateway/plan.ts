/**
 * `moat plan --stack NAME`: what a stack declares, offline — the program run under mocks
 * (components/offline) in a child process, printed for pull-request review: each resource
 * with its type, name and inputs; outputs; secrets masked as [secret], whatever they hold.
 */
import { join } from "node:path";
import { runOfflineChild } from "../components/offline/child";
import { type OfflineRun, mapSecrets } from "../components/offline/mocks";
import { PROJECT_DIR } from "../components/stack-config";

const VALUE_MAX_CHARS = 200;

export function runPlan(stack: string): Promise<OfflineRun> {
  return runOfflineChild(join(PROJECT_DIR, "components", "offline", "plan-runner.ts"), [stack]);
}

function show(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > VALUE_MAX_CHARS ? `${text.slice(0, VALUE_MAX_CHARS)}…` : text;
}

export function formatPlan(stack: string, run: OfflineRun): string[] {
  if (run.error) return [`stack ${stack}: ${run.error}`];
  const masked = (value: unknown) => mapSecrets(value, () => "[secret]");
  const lines = [`stack ${stack}: ${run.registered.length} resources`];
  for (const resource of run.registered) {
    lines.push("", `${resource.type}  ${resource.name}`);
    for (const [key, value] of Object.entries(resource.inputs)) {
      if (key === "__provider") continue;
      lines.push(`    ${key}: ${show(masked(value))}`);
    }
  }
  lines.push("", "outputs:");
  for (const [key, output] of Object.entries(run.outputs)) {
    lines.push(`    ${key}: ${output.secret ? "[secret]" : show(masked(output.value))}`);
  }
  return lines;
}
