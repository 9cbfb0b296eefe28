/**
 * `moat learn [--config FILE] --spam|--ham PATH...`: teaches the gateway's Bayes filter
 * (`<dataDir>/bayes.sqlite`) messages of a known kind — files (.eml, or mbox files holding one
 * or many messages, as mail clients export a folder) or directories of them. Learning a message again with the same
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

/**
 * The messages of an mbox file (each starts with a "From " line after an empty line; a quoted
 * ">From " line in a body is unquoted, as mboxrd writes it). A file without a leading "From "
 * line is one message as it is.
 */
export function splitMbox(raw: Buffer): Buffer[] {
  const text = raw.toString("latin1");
  if (!text.startsWith("From ")) return [raw];
  const messages: Buffer[] = [];
  const separator = /(?:^|\r?\n\r?\n)From [^\n]*\n/g;
  const starts: { from: number; body: number }[] = [];
  for (const match of text.matchAll(separator)) {
    const blank = match[0].startsWith("From ") ? 0 : match[0].indexOf("From ");
    starts.push({ from: (match.index ?? 0) + blank, body: (match.index ?? 0) + match[0].length });
  }
  starts.forEach((start, i) => {
    const end = i + 1 < starts.length ? (starts[i + 1] as { from: number }).from : text.length;
    const message = text.slice(start.body, end).replace(/^>(>*From )/gm, "$1");
    if (message.trim()) messages.push(Buffer.from(message, "latin1"));
  });
  return messages;
}

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
        let messages: Buffer[];
        try {
          messages = splitMbox(readFileSync(file));
          if (messages.every((m) => m.toString("latin1").trim() === "")) throw new Error("the file is empty");
        } catch (error) {
          print(`${file}: not learned: ${(error as Error).message}`);
          tally.failed++;
          continue;
        }
        for (const [index, raw] of messages.entries()) {
          try {
            tally[await learnMessage(store, raw, options.label)]++;
          } catch (error) {
            print(
              `${file}${messages.length > 1 ? ` (message ${index + 1})` : ""}: not learned: ${(error as Error).message}`,
            );
            tally.failed++;
          }
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
