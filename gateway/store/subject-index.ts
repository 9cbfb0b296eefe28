/**
 * Subject search on SQLite without a full scan for rare terms: an FTS5 table with the trigram
 * tokenizer over the subjects (external content: `messages` keeps the text; the index holds
 * the trigrams), kept in step by triggers. A trigram phrase query is a substring match.
 *
 * Case: the index holds each subject lower-cased the way SQLite's lower() does it (ASCII
 * letters), and the term is lower-cased the same way, so a search finds what the scan finds.
 *
 * Which way a search goes (queries.ts): the index is asked for at most RARE_MATCHES + 1
 * messages. Fewer than that: those are the candidates (a rare term — the case the scan was
 * slow for, reading every row). More: the term is common, and the scan newest-first finds a
 * page of them after a few rows, where collecting every match from the index would take
 * longer. A term under three characters has no trigram and is scanned.
 *
 * SQLite only. On PostgreSQL a pg_trgm index on lower(subject) serves the query's plain LIKE.
 * A tracker made before this index gets it filled from its rows once, at start-up.
 */
import type Database from "better-sqlite3";

export const SUBJECT_INDEX = "messages_subject";
export const RARE_MATCHES = 2_000;

/** Creates the index (and fills it from existing rows) if the tracker has none. */
export function ensureSubjectIndex(sqlite: Database.Database): void {
  const exists = sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(SUBJECT_INDEX);
  if (exists) return;
  sqlite.transaction(() => {
    sqlite.exec(`
      CREATE VIRTUAL TABLE ${SUBJECT_INDEX} USING fts5(subject, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1');
      CREATE TRIGGER ${SUBJECT_INDEX}_insert AFTER INSERT ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (rowid, subject) VALUES (new.rowid, lower(new.subject));
      END;
      CREATE TRIGGER ${SUBJECT_INDEX}_delete AFTER DELETE ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject) VALUES ('delete', old.rowid, lower(old.subject));
      END;
      CREATE TRIGGER ${SUBJECT_INDEX}_update AFTER UPDATE OF subject ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject) VALUES ('delete', old.rowid, lower(old.subject));
        INSERT INTO ${SUBJECT_INDEX} (rowid, subject) VALUES (new.rowid, lower(new.subject));
      END;
      INSERT INTO ${SUBJECT_INDEX} (rowid, subject) SELECT rowid, lower(subject) FROM messages;
    `);
  })();
}

/** As SQLite's lower(): ASCII letters only. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}

/** The FTS5 query for "subject contains `text`": one phrase, quotes doubled. */
export function subjectPhrase(text: string): string {
  return `"${asciiLower(text).replace(/"/g, '""')}"`;
}

/** Trigrams need three characters (code points, as FTS5 counts them). */
export function indexable(text: string): boolean {
  return [...text].length >= 3;
}
