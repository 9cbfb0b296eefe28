/**
 * The Live Email Tracker's store: every accepted message with its envelope and status, each
 * delivery attempt with the downstream reply, and every refused recipient. Written at each
 * step of the mail path; read by the tracker API and page (queries.ts) and the tests.
 *
 * Kysely over SQLite (better-sqlite3, WAL) by default; the queries are plain so the same
 * store runs on PostgreSQL. The tracker is a record, not the queue: the spool stays the
 * durable truth, so the tracker's writes use synchronous=NORMAL and a failed write is
 * logged by the caller, never turned into a lost message.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import {
  type SearchFilter,
  type SearchPage,
  auditLog,
  purgeBefore,
  recordAudit,
  searchMessages,
  setMessageStatus,
} from "./queries";
import { type AttemptsTable, type TrackerDatabase, type TrackerStatus, migrate } from "./schema";

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

export async function openSqliteTracker(path: string): Promise<TrackerStore> {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const sqlite = new Database(path);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  const db = new Kysely<TrackerDatabase>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrate(db);

  return {
    async recordArrival(arrival) {
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto("messages")
          .values({
            id: arrival.id,
            received_at: arrival.receivedAt,
            client_ip: arrival.clientIp,
            helo: arrival.helo,
            tls: arrival.tls ? 1 : 0,
            mail_from: arrival.mailFrom.toLowerCase(),
            subject: arrival.subject,
            size: arrival.size,
            direction: arrival.direction,
            status: arrival.verdict?.status ?? "Pending",
            category: arrival.verdict?.category ?? null,
            rule: arrival.verdict?.rule ?? null,
            reasons: JSON.stringify(arrival.verdict?.reasons ?? []),
            updated_at: arrival.receivedAt,
          })
          .onConflict((c) => c.column("id").doNothing())
          .execute();
        for (const address of arrival.recipients) {
          await tx
            .insertInto("recipients")
            .values({
              message_id: arrival.id,
              address: address.toLowerCase(),
              status: arrival.verdict?.status ?? "Pending",
              response: null,
              updated_at: arrival.receivedAt,
            })
            .onConflict((c) => c.columns(["message_id", "address"]).doNothing())
            .execute();
        }
      });
    },

    async recordRejection(rejection) {
      await db
        .insertInto("rejections")
        .values({
          id: null,
          at: rejection.at,
          client_ip: rejection.clientIp,
          mail_from: rejection.mailFrom,
          recipient: rejection.recipient,
          reply: rejection.reply,
        })
        .execute();
    },

    async recordAttempt(attempt) {
      await db.transaction().execute(async (tx) => {
        await tx
          .insertInto("attempts")
          .values({
            id: null,
            message_id: attempt.messageId,
            at: attempt.at,
            recipient: attempt.recipient,
            outcome: attempt.outcome,
            response: attempt.response,
          })
          .execute();
        await tx
          .updateTable("recipients")
          .set({ status: RECIPIENT_STATUS[attempt.outcome], response: attempt.response, updated_at: attempt.at })
          .where("message_id", "=", attempt.messageId)
          .where("address", "=", attempt.recipient)
          .execute();
        const statuses = await tx
          .selectFrom("recipients")
          .select("status")
          .where("message_id", "=", attempt.messageId)
          .execute();
        await tx
          .updateTable("messages")
          .set({ status: overall(statuses.map((s) => s.status)), updated_at: attempt.at })
          .where("id", "=", attempt.messageId)
          .execute();
      });
    },

    async story(id) {
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
      const rows = await db
        .selectFrom("rejections")
        .select(["recipient", "reply", "client_ip"])
        .orderBy("id")
        .execute();
      return rows.map((r) => ({ recipient: r.recipient, reply: r.reply, clientIp: r.client_ip }));
    },

    search: (filter) => searchMessages(db, filter),
    setStatus: (id, status, at) => setMessageStatus(db, id, status, at),
    audit: (entry) => recordAudit(db, entry),
    auditLog: (limit) => auditLog(db, limit),
    purge: (before) => purgeBefore(db, before),

    async close() {
      await db.destroy();
    },
  };
}
