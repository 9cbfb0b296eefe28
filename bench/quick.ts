/**
 * The quick set (`npm run bench`): every benchmark script once, one after the other, each in a
 * process of its own (so none measures beside another or inherits its heap), then how long each
 * took. Stops at the first that fails, naming it, with its exit code.
 *
 *   tsx bench/quick.ts
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";

/** Each script and the node flags it needs; bench/peers.ts last, the longest. */
const STEPS: { script: string; args?: string[]; flags?: string[] }[] = [
  { script: "large-message.ts" },
  { script: "relay-throughput.ts" },
  { script: "directory-sync.ts", flags: ["--expose-gc"] },
  { script: "spam-quality.ts" },
  { script: "tracker-search.ts" },
  { script: "rules-scale.ts" },
  { script: "peers.ts", args: ["1000"] },
];

function minutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

const started = Date.now();
const took: string[] = [];
for (const { script, args = [], flags = [] } of STEPS) {
  const at = Date.now();
  const run = spawnSync(process.execPath, [...flags, "--import", "tsx", join("bench", script), ...args], {
    stdio: "inherit",
  });
  took.push(`${script.replace(/\.ts$/, "")} ${minutes(Date.now() - at)}`);
  if (run.status !== 0) {
    console.error(`quick set: bench/${script} failed (${run.error?.message ?? `exit ${run.status ?? run.signal}`})`);
    process.exit(1);
  }
}
console.log(`quick set: ${minutes(Date.now() - started)} (${took.join(", ")})`);
