/**
 * Subject search on SQLite without a full scan for rare terms: an FTS5 table with the trigram
 * tokenizer over the subjects (external content: `messages` keeps the text; the index holds
 * the trigrams), kept in step by triggers and, for new mail, in batches (ensureSubjectIndex).
 * A trigram phrase query is a substring match.
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

const PENDING = `${SUBJECT_INDEX}_pending`;

/**
 * Creates the index (and fills it from existing rows) if the tracker has none, and the table
 * of messages not indexed yet. An arrival only notes its row there (a few µs inside its own
 * transaction); `indexPendingSubjects` indexes the noted rows in one transaction later. One
 * trigram insert per arrival had cost 40–160 µs on the accept path, more as the index grew,
 * and FTS5 writes a segment per transaction; in batches it is a few µs a row. A deleted row
 * is taken out of the index, or only out of the pending table when it was never indexed.
 * A tracker whose index was kept by the earlier insert trigger switches over as it is.
 */
export function ensureSubjectIndex(sqlite: Database.Database): void {
  const has = (name: string) => !!sqlite.prepare("SELECT 1 FROM sqlite_master WHERE name = ?").get(name);
  sqlite.transaction(() => {
    const created = !has(SUBJECT_INDEX);
    if (created)
      sqlite.exec(
        `CREATE VIRTUAL TABLE ${SUBJECT_INDEX} USING fts5(subject, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1');`,
      );
    if (!has(PENDING))
      sqlite.exec(`
        DROP TRIGGER IF EXISTS ${SUBJECT_INDEX}_insert;
        DROP TRIGGER IF EXISTS ${SUBJECT_INDEX}_delete;
        DROP TRIGGER IF EXISTS ${SUBJECT_INDEX}_update;
        CREATE TABLE ${PENDING} (message INTEGER PRIMARY KEY);
        CREATE TRIGGER ${SUBJECT_INDEX}_insert AFTER INSERT ON messages BEGIN
          INSERT INTO ${PENDING} (message) VALUES (new.rowid);
        END;
        CREATE TRIGGER ${SUBJECT_INDEX}_delete AFTER DELETE ON messages BEGIN
          INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject)
            SELECT 'delete', old.rowid, lower(old.subject) WHERE NOT EXISTS (SELECT 1 FROM ${PENDING} WHERE message = old.rowid);
          DELETE FROM ${PENDING} WHERE message = old.rowid;
        END;
        CREATE TRIGGER ${SUBJECT_INDEX}_update AFTER UPDATE OF subject ON messages BEGIN
          INSERT INTO ${SUBJECT_INDEX} (${SUBJECT_INDEX}, rowid, subject)
            SELECT 'delete', old.rowid, lower(old.subject) WHERE NOT EXISTS (SELECT 1 FROM ${PENDING} WHERE message = old.rowid);
          INSERT OR IGNORE INTO ${PENDING} (message) VALUES (new.rowid);
        END;
      `);
    if (created)
      sqlite.exec(`
        INSERT INTO ${SUBJECT_INDEX} (rowid, subject) SELECT rowid, lower(subject) FROM messages;
        DELETE FROM ${PENDING};
      `);
  })();
}

/** Returns a function that indexes the noted messages, in one transaction; nothing when none is noted. */
export function subjectIndexer(sqlite: Database.Database): () => void {
  const noted = sqlite.prepare(`SELECT EXISTS (SELECT 1 FROM ${PENDING})`).pluck();
  const index = sqlite.transaction(() => {
    sqlite.exec(`
      INSERT INTO ${SUBJECT_INDEX} (rowid, subject)
        SELECT m.rowid, lower(m.subject) FROM ${PENDING} p JOIN messages m ON m.rowid = p.message;
      DELETE FROM ${PENDING};
    `);
  });
  return () => {
    if (noted.get()) index();
  };
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
