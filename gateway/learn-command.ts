/**
 * `moat learn [--config FILE] --spam|--ham PATH...`: teaches the gateway's Bayes filter
 * (`<dataDir>/bayes.sqlite`) messages of a known kind — files (.eml, or one message per file
 * with an mbox "From " line) or directories of them. Learning a message again with the same
 * label changes nothing; with the other label it moves. A running gateway sees the counts at
 * its next message (same database, WAL).
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { resolveConfig } from "./config-source";
import type { Env } from "./env";
import { learnMessage } from "./filters/bayes";
import type { BayesLabel } from "./filters/bayes-store";
import { openBayesStoreFor } from "./filters";

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => !entry.name.startsWith("."))
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((entry) => filesUnder(join(path, entry.name)));
}

export async function learnFiles(
  options: { readonly configFile: string | undefined; readonly label: BayesLabel; readonly paths: readonly string[] },
  env: Env,
  print: (line: string) => void,
): Promise<number> {
  const { config } = resolveConfig(options.configFile, env);
  const store = openBayesStoreFor(config);
  if (!store) {
    print("moat: filters.bayes.enabled is false in this config: nothing to learn into");
    return 1;
  }
  const tally = { learned: 0, unchanged: 0, moved: 0, failed: 0 };
  try {
    for (const path of options.paths) {
      let files: string[];
      try {
        files = filesUnder(path);
      } catch (error) {
        print(`${path}: ${(error as Error).message}`);
        tally.failed++;
        continue;
      }
      for (const file of files) {
        try {
          let raw = readFileSync(file);
          if (raw.subarray(0, 5).toString("latin1") === "From ") raw = raw.subarray(raw.indexOf(0x0a) + 1);
          if (raw.toString("latin1").trim() === "") throw new Error("the file is empty");
          tally[await learnMessage(store, raw, options.label)]++;
        } catch (error) {
          print(`${file}: not learned: ${(error as Error).message}`);
          tally.failed++;
        }
      }
    }
    const totals = store.totals();
    const { minSpam, minHam } = config.filters.bayes;
    print(
      `${options.label}: ${tally.learned} learned, ${tally.moved} moved from ${options.label === "spam" ? "ham" : "spam"}, ${tally.unchanged} already known, ${tally.failed} failed`,
    );
    print(
      `Bayes now knows ${totals.spam} spam and ${totals.ham} ham: ${
        totals.spam >= minSpam && totals.ham >= minHam
          ? "in use"
          : `not used until it has ${minSpam} spam and ${minHam} ham`
      }`,
    );
    return tally.failed > 0 ? 1 : 0;
  } finally {
    store.close();
  }
}
