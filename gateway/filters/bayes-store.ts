/**
 * The Bayes filter's memory: how many learned spam and ham messages contained each token, in
 * `<dataDir>/bayes.sqlite` (better-sqlite3, WAL, so `moat learn` in another process and a
 * running gateway share it safely). One database per gateway, so per customer.
 *
 * Each learned message is remembered by a digest of its tokens: learning the same message
 * twice with the same label changes nothing, and learning it with the other label moves it
 * (its tokens are subtracted from the old side and added to the new), as SpamAssassin's
 * sa-learn does. A message's tokens are what the classifier sees, so the digest does not
 * change with transport headers (our Received line, a re-export from the tracker).
 */
import Database from "better-sqlite3";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { GatewayConfig } from "../config";
import type { TokenCounts } from "./bayes-classifier";

export type BayesLabel = "spam" | "ham";

export interface BayesTotals {
  readonly spam: number;
  readonly ham: number;
}

export interface BayesStore {
  totals(): BayesTotals;
  /** Counts for the given tokens that were ever learned. */
  counts(tokens: Iterable<string>): Map<string, TokenCounts>;
  /** `learned`, `unchanged` (already learned with this label) or `moved` (was the other label). */
  learn(tokens: ReadonlySet<string>, label: BayesLabel): "learned" | "unchanged" | "moved";
  close(): void;
}

export function digestOf(tokens: ReadonlySet<string>): string {
  return createHash("sha256")
    .update([...tokens].sort().join("\n"))
    .digest("hex");
}

export function openBayesStore(path: string): BayesStore {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // The timeout first: the gateway and its scan thread open the database at the same moment.
  db.pragma("busy_timeout = 5000");
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS learned (digest TEXT PRIMARY KEY, label TEXT NOT NULL CHECK (label IN ('spam','ham')), at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS totals (label TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  `);
  const totalsQuery = db.prepare<[], { label: BayesLabel; n: number }>("SELECT label, n FROM totals");
  const addTotal = db.prepare<[BayesLabel, number]>(
    "INSERT INTO totals (label, n) VALUES (?, ?) ON CONFLICT (label) DO UPDATE SET n = n + excluded.n",
  );
  const countsQuery = db.prepare<[string], { token: string; spam: number; ham: number }>(
    "SELECT token, spam, ham FROM tokens WHERE token IN (SELECT value FROM json_each(?))",
  );
  const labelQuery = db.prepare<[string], { label: BayesLabel }>("SELECT label FROM learned WHERE digest = ?");
  const upsertLabel = db.prepare<[string, BayesLabel, number]>(
    "INSERT INTO learned (digest, label, at) VALUES (?, ?, ?) ON CONFLICT (digest) DO UPDATE SET label = excluded.label, at = excluded.at",
  );
  const addToken = db.prepare<[string, number, number]>(
    "INSERT INTO tokens (token, spam, ham) VALUES (?, ?, ?) ON CONFLICT (token) DO UPDATE SET spam = spam + excluded.spam, ham = ham + excluded.ham",
  );
  const dropEmpty = db.prepare("DELETE FROM tokens WHERE spam <= 0 AND ham <= 0");

  const learn = db.transaction((tokens: ReadonlySet<string>, label: BayesLabel) => {
    const digest = digestOf(tokens);
    const before = labelQuery.get(digest)?.label;
    if (before === label) return "unchanged" as const;
    const spam = label === "spam" ? 1 : 0;
    for (const token of tokens) addToken.run(token, before ? 2 * spam - 1 : spam, before ? 1 - 2 * spam : 1 - spam);
    if (before) {
      dropEmpty.run();
      addTotal.run(before, -1);
    }
    addTotal.run(label, 1);
    upsertLabel.run(digest, label, Date.now());
    return before ? ("moved" as const) : ("learned" as const);
  });

  return {
    totals() {
      const totals = { spam: 0, ham: 0 };
      for (const row of totalsQuery.all()) totals[row.label] = row.n;
      return totals;
    },
    counts(tokens) {
      const counts = new Map<string, TokenCounts>();
      for (const row of countsQuery.all(JSON.stringify([...tokens])))
        counts.set(row.token, { spam: row.spam, ham: row.ham });
      return counts;
    },
    learn: (tokens, label) => learn(tokens, label),
    close: () => db.close(),
  };
}

/** The config's Bayes database (`<dataDir>/bayes.sqlite`), or undefined when Bayes is off. */
export function openBayesStoreFor(config: GatewayConfig): BayesStore | undefined {
  return config.filters.bayes.enabled ? openBayesStore(join(config.dataDir, "bayes.sqlite")) : undefined;
}
