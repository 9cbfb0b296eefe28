/**
 * Subject search on SQLite without a scan: an FTS5 table with the trigram tokenizer over
 * `messages.subject` (external content: the subjects are not stored twice), kept in step by
 * triggers. A trigram phrase query is a case-insensitive substring match, so the tracker's
 * "subject contains" keeps its meaning; a term shorter than three characters has no trigram
 * and is searched by a scan, as before (queries.ts).
 *
 * SQLite only. On PostgreSQL the same search would use a pg_trgm index on lower(subject), and
 * the query's plain LIKE would use it as it is.
 *
 * A tracker made before this index gets it built from its rows once, at start-up.
 */
import type Database from "better-sqlite3";

export const SUBJECT_INDEX = "messages_subject";

/** Creates the index (and fills it from existing rows) if the tracker has none; true when it did. */
export function ensureSubjectIndex(sqlite: Database.Database): boolean {
  const exists = sqlite.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(SUBJECT_INDEX);
  if (exists) return false;
  sqlite.transaction(() => {
    sqlite.exec(`
      CREATE VIRTUAL TABLE ${SUBJECT_INDEX} USING fts5(subject, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram');
      CREATE TRIGGER ${SUBJECT_INDEX}_insert AFTER INSERT ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (rowid, subject) VALUES (new.rowid, new.subject);
      END;
      CREATE TRIGGER ${SUBJECT_INDEX}_delete AFTER DELETE ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject) VALUES ('delete', old.rowid, old.subject);
      END;
      CREATE TRIGGER ${SUBJECT_INDEX}_update AFTER UPDATE OF subject ON messages BEGIN
        INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject) VALUES ('delete', old.rowid, old.subject);
        INSERT INTO ${SUBJECT_INDEX} (rowid, subject) VALUES (new.rowid, new.subject);
      END;
      INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}) VALUES ('rebuild');
    `);
  })();
  return true;
}

/** The FTS5 query for "subject contains `text`": one phrase, quotes doubled. */
export function subjectPhrase(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}

/** Trigrams need three characters (code points, as FTS5 counts them). */
export function indexable(text: string): boolean {
  return [...text].length >= 3;
}
