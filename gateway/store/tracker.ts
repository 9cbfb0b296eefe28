/**
 * The Live Email Tracker's store: every accepted message with its envelope and status, each
 * delivery attempt with the downstream reply, and every refused recipient. Written at each
 * step of the mail path; read by the tracker API and page (queries.ts) and the tests.
 *
 * SQLite (better-sqlite3, WAL). The reads (search, a message's story, the audit log) are plain
 * Kysely (queries.ts), so they would run on PostgreSQL too; the writes are prepared statements
 * in synchronous transactions — they run for every message and every attempt, and Kysely's
 * query building cost more CPU per message than the rest of the tracker (bench/peers.ts). No
 * write keeps a transaction open across an await, so writes never interleave on the one
 * connection. The tracker is a record, not the queue: the spool stays the durable truth, so
 * the writes use synchronous=NORMAL and a failed write is logged by the caller, never turned
 * into a lost message.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { type SearchFilter, type SearchPage, auditLog, searchMessages } from "./queries";
import { ensureSubjectIndex, subjectIndexer } from "./subject-index";
import { startCheckpointer } from "./checkpointer";
import { createWriteBatch } from "./write-batch";
import { type AttemptsTable, type TrackerDatabase, type TrackerStatus, migrate, senderDomainOf } from "./schema";

export interface ArrivalRecord {
  readonly id: string;
  readonly receivedAt: number;
  readonly clientIp: string;
  readonly helo: string;
  readonly tls: boolean;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly subject: string;
  readonly size: number;
  readonly direction: "inbound" | "outbound" | "bounce";
  /** The filtering verdict; without it the message is Pending with no category. */
  readonly verdict?: {
    readonly status: TrackerStatus;
    readonly category: string | null;
    /** `customer rule stacks/acme/rules.csv:3 (allow)` style. */
    readonly rule: string | null;
    readonly reasons: readonly unknown[];
  };
}

export interface AttemptRecord {
  readonly messageId: string;
  readonly at: number;
  readonly recipient: string;
  readonly outcome: AttemptsTable["outcome"];
  readonly response: string;
}

export interface MessageStory {
  readonly id: string;
  readonly status: TrackerStatus;
  readonly category: string | null;
  readonly rule: string | null;
  readonly reasons: readonly unknown[];
  readonly mailFrom: string;
  readonly subject: string;
  readonly direction: string;
  readonly recipients: readonly { address: string; status: TrackerStatus; response: string | null }[];
  readonly attempts: readonly { at: number; recipient: string; outcome: string; response: string }[];
}

export interface TrackerStore {
  recordArrival(arrival: ArrivalRecord): Promise<void>;
  recordRejection(rejection: {
    at: number;
    clientIp: string;
    mailFrom: string;
    recipient: string;
    reply: string;
  }): Promise<void>;
  /** One attempt for one recipient; updates the recipient's status and the message's. */
  recordAttempt(attempt: AttemptRecord): Promise<void>;
  story(id: string): Promise<MessageStory | undefined>;
  search(filter: SearchFilter): Promise<SearchPage>;
  setStatus(id: string, status: TrackerStatus, at: number): Promise<void>;
  audit(entry: { at: number; actor: string; action: string; messageId?: string; detail: string }): Promise<void>;
  auditLog(limit?: number): ReturnType<typeof auditLog>;
  /** Retention: removes records received before `before`; returns their ids. */
  purge(before: number): Promise<string[]>;
  rejections(): Promise<{ recipient: string; reply: string; clientIp: string }[]>;
  close(): Promise<void>;
}

const RECIPIENT_STATUS: Record<AttemptsTable["outcome"], TrackerStatus> = {
  delivered: "Deliver",
  temporary: "Deferred",
  permanent: "Reject",
};

/** A message's status from its recipients': Deliver when all are, else the least final. */
function overall(statuses: readonly TrackerStatus[]): TrackerStatus {
  if (statuses.includes("Pending")) return "Pending";
  if (statuses.includes("Deferred")) return "Deferred";
  if (statuses.length > 0 && statuses.every((s) => s === "Reject")) return "Reject";
  return "Deliver";
}

const SUBJECT_INDEX_INTERVAL_MS = 1_000;

/**
 * @param onCheckpointFailure told if the WAL's checkpoint thread fails (checkpointer.ts: the
 *   writer then checkpoints itself again, as SQLite does by default)
 */
export async function openSqliteTracker(
  path: string,
  onCheckpointFailure?: (error: Error) => void,
): Promise<TrackerStore> {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  const db = new Kysely<TrackerDatabase>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db);
  ensureSubjectIndex(sqlite);
  const checkpointer = path === ":memory:" ? undefined : startCheckpointer(sqlite, path, onCheckpointFailure);

  const statements = {
    message: sqlite.prepare(
      `INSERT INTO messages (id, received_at, client_ip, helo, tls, mail_from, sender_domain, subject, size, direction, status, category, rule, reasons, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    ),
    recipient: sqlite.prepare(
      `INSERT INTO recipients (message_id, address, status, response, updated_at) VALUES (?, ?, ?, NULL, ?)
       ON CONFLICT (message_id, address) DO NOTHING`,
    ),
    rejection: sqlite.prepare(
      "INSERT INTO rejections (at, client_ip, mail_from, recipient, reply) VALUES (?, ?, ?, ?, ?)",
    ),
    attempt: sqlite.prepare(
      "INSERT INTO attempts (message_id, at, recipient, outcome, response) VALUES (?, ?, ?, ?, ?)",
    ),
    recipientStatus: sqlite.prepare(
      "UPDATE recipients SET status = ?, response = ?, updated_at = ? WHERE message_id = ? AND address = ?",
    ),
    recipientStatuses: sqlite.prepare<[string], { status: TrackerStatus }>(
      "SELECT status FROM recipients WHERE message_id = ?",
    ),
    messageStatus: sqlite.prepare("UPDATE messages SET status = ?, updated_at = ? WHERE id = ?"),
    allRecipientsStatus: sqlite.prepare("UPDATE recipients SET status = ?, updated_at = ? WHERE message_id = ?"),
    audit: sqlite.prepare("INSERT INTO audit (at, actor, action, message_id, detail) VALUES (?, ?, ?, ?, ?)"),
    oldMessages: sqlite.prepare<[number], { id: string }>("SELECT id FROM messages WHERE received_at < ?"),
    purgeRecipients: sqlite.prepare("DELETE FROM recipients WHERE message_id = ?"),
    purgeAttempts: sqlite.prepare("DELETE FROM attempts WHERE message_id = ?"),
    purgeMessage: sqlite.prepare("DELETE FROM messages WHERE id = ?"),
    purgeRejections: sqlite.prepare("DELETE FROM rejections WHERE at < ?"),
  };

  const recordArrival = (arrival: ArrivalRecord) => {
    const status = arrival.verdict?.status ?? "Pending";
    statements.message.run(
      arrival.id,
      arrival.receivedAt,
      arrival.clientIp,
      arrival.helo,
      arrival.tls ? 1 : 0,
      arrival.mailFrom.toLowerCase(),
      senderDomainOf(arrival.mailFrom),
      arrival.subject,
      arrival.size,
      arrival.direction,
      status,
      arrival.verdict?.category ?? null,
      arrival.verdict?.rule ?? null,
      JSON.stringify(arrival.verdict?.reasons ?? []),
      arrival.receivedAt,
    );
    for (const address of arrival.recipients)
      statements.recipient.run(arrival.id, address.toLowerCase(), status, arrival.receivedAt);
  };
  const recordAttempt = (attempt: AttemptRecord) => {
    statements.attempt.run(attempt.messageId, attempt.at, attempt.recipient, attempt.outcome, attempt.response);
    statements.recipientStatus.run(
      RECIPIENT_STATUS[attempt.outcome],
      attempt.response,
      attempt.at,
      attempt.messageId,
      attempt.recipient,
    );
    const statuses = statements.recipientStatuses.all(attempt.messageId).map((r) => r.status);
    statements.messageStatus.run(overall(statuses), attempt.at, attempt.messageId);
  };
  const setStatus = (id: string, status: TrackerStatus, at: number) => {
    statements.messageStatus.run(status, at, id);
    statements.allRecipientsStatus.run(status, at, id);
  };
  const purgeIds = sqlite.transaction((ids: readonly string[]) => {
    for (const id of ids) {
      statements.purgeRecipients.run(id);
      statements.purgeAttempts.run(id);
      statements.purgeMessage.run(id);
    }
  });

  // Every write goes through the batch, so they stay in order; every read flushes it first.
  const batch = createWriteBatch(sqlite);
  // New mail's subjects are indexed in batches, every SUBJECT_INDEX_INTERVAL_MS and before a search.
  const indexSubjects = subjectIndexer(sqlite);
  const indexing = setInterval(() => {
    try {
      indexSubjects();
    } catch {
      // The rows stay noted: the next tick tries again, and a search (which indexes first)
      // reports the error to its caller. A timer must not take the gateway down with it.
    }
  }, SUBJECT_INDEX_INTERVAL_MS);
  indexing.unref();

  return {
    recordArrival: (arrival) => batch.write(() => recordArrival(arrival)),

    recordRejection: (rejection) =>
      batch.write(() =>
        statements.rejection.run(
          rejection.at,
          rejection.clientIp,
          rejection.mailFrom,
          rejection.recipient,
          rejection.reply,
        ),
      ),

    recordAttempt: (attempt) => batch.write(() => recordAttempt(attempt)),

    async story(id) {
      batch.flush();
      const message = await db.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
      if (!message) return undefined;
      const recipients = await db
        .selectFrom("recipients")
        .select(["address", "status", "response"])
        .where("message_id", "=", id)
        .orderBy("address")
        .execute();
      const attempts = await db
        .selectFrom("attempts")
        .select(["at", "recipient", "outcome", "response"])
        .where("message_id", "=", id)
        .orderBy("id")
        .execute();
      return {
        id: message.id,
        status: message.status,
        category: message.category,
        rule: message.rule,
        reasons: JSON.parse(message.reasons) as unknown[],
        mailFrom: message.mail_from,
        subject: message.subject,
        direction: message.direction,
        recipients,
        attempts: attempts.map((a) => ({ ...a, at: Number(a.at) })),
      };
    },

    async rejections() {
      batch.flush();
      const rows = await db
        .selectFrom("rejections")
        .select(["recipient", "reply", "client_ip"])
        .orderBy("id")
        .execute();
      return rows.map((r) => ({ recipient: r.recipient, reply: r.reply, clientIp: r.client_ip }));
    },

    search(filter) {
      batch.flush();
      indexSubjects();
      return searchMessages(db, filter, { subjectIndex: true });
    },
    setStatus: (id, status, at) => batch.write(() => setStatus(id, status, at)),
    audit: (entry) =>
      batch.write(() =>
        statements.audit.run(entry.at, entry.actor, entry.action, entry.messageId ?? null, entry.detail),
      ),
    auditLog(limit) {
      batch.flush();
      return auditLog(db, limit);
    },
    /** Retention, in transactions of 500 records so delivery's writes are not held up long. */
    async purge(before) {
      batch.flush();
      const ids = statements.oldMessages.all(before).map((r) => r.id);
      for (let i = 0; i < ids.length; i += 500) {
        purgeIds(ids.slice(i, i + 500));
        await new Promise((resolve) => setImmediate(resolve));
      }
      statements.purgeRejections.run(before);
      return ids;
    },

    async close() {
      clearInterval(indexing);
      batch.flush();
      try {
        indexSubjects();
      } catch {
        // still noted: indexed after the next start
      }
      await checkpointer?.close();
      await db.destroy();
    },
  };
}
