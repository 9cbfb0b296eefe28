/**
 * The tracker's tables, as Kysely types and as a migration that speaks both SQLite (the
 * embedded default) and PostgreSQL (several replicas): plain column types, no engine-specific
 * SQL. Times are milliseconds since the epoch (bigint-safe integers), JSON is text.
 */
import type { Kysely } from "kysely";

export type TrackerStatus = "Pending" | "Deferred" | "Deliver" | "Quarantine" | "Delete" | "Reject";

export interface MessagesTable {
  id: string;
  received_at: number;
  client_ip: string;
  helo: string;
  tls: number;
  mail_from: string;
  /** The envelope sender's domain ("" for the null sender): `*@domain` searches use its index. */
  sender_domain: string;
  subject: string;
  size: number;
  direction: "inbound" | "outbound" | "bounce";
  status: TrackerStatus;
  category: string | null;
  rule: string | null;
  /** JSON array of reasons. */
  reasons: string;
  updated_at: number;
}

export interface RecipientsTable {
  message_id: string;
  address: string;
  status: TrackerStatus;
  /** The last downstream reply for this recipient. */
  response: string | null;
  updated_at: number;
}

export interface AttemptsTable {
  id: number | null;
  message_id: string;
  at: number;
  recipient: string;
  outcome: "delivered" | "temporary" | "permanent";
  response: string;
}

export interface RejectionsTable {
  id: number | null;
  at: number;
  client_ip: string;
  mail_from: string;
  recipient: string;
  reply: string;
}

/** Who did what to which message, from the API and the page (never mail content). */
export interface AuditTable {
  id: number | null;
  at: number;
  actor: string;
  action: string;
  message_id: string | null;
  detail: string;
}

export interface TrackerDatabase {
  audit: AuditTable;
  messages: MessagesTable;
  recipients: RecipientsTable;
  attempts: AttemptsTable;
  rejections: RejectionsTable;
}

/** The domain part of an address, lower case; "" when there is none (the null sender). */
export function senderDomainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0 ? "" : address.slice(at + 1).toLowerCase();
}

/**
 * A tracker made before `sender_domain` existed gets the column and has it filled in (once, in
 * batches), so `*@domain` searches need no scan on upgraded databases either.
 */
async function addSenderDomain(db: Kysely<TrackerDatabase>): Promise<void> {
  const tables = await db.introspection.getTables();
  const messages = tables.find((t) => t.name === "messages");
  if (!messages || messages.columns.some((c) => c.name === "sender_domain")) return;
  await db.schema
    .alterTable("messages")
    .addColumn("sender_domain", "varchar(255)", (c) => c.notNull().defaultTo(""))
    .execute();
  // Keyset paging by id: each batch starts where the last ended, not by skipping rows again.
  for (let after = ""; ;) {
    const rows = await db
      .selectFrom("messages")
      .select(["id", "mail_from"])
      .where("id", ">", after)
      .orderBy("id")
      .limit(10_000)
      .execute();
    if (rows.length === 0) break;
    after = (rows[rows.length - 1] as { id: string }).id;
    await db.transaction().execute(async (tx) => {
      for (const row of rows)
        await tx
          .updateTable("messages")
          .set({ sender_domain: senderDomainOf(row.mail_from) })
          .where("id", "=", row.id)
          .execute();
    });
  }
}

export async function migrate(db: Kysely<TrackerDatabase>): Promise<void> {
  await db.schema
    .createTable("messages")
    .ifNotExists()
    .addColumn("id", "varchar(32)", (c) => c.primaryKey())
    .addColumn("received_at", "bigint", (c) => c.notNull())
    .addColumn("client_ip", "varchar(64)", (c) => c.notNull())
    .addColumn("helo", "varchar(255)", (c) => c.notNull())
    .addColumn("tls", "integer", (c) => c.notNull())
    .addColumn("mail_from", "varchar(320)", (c) => c.notNull())
    .addColumn("sender_domain", "varchar(255)", (c) => c.notNull().defaultTo(""))
    .addColumn("subject", "varchar(998)", (c) => c.notNull())
    .addColumn("size", "bigint", (c) => c.notNull())
    .addColumn("direction", "varchar(16)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("category", "varchar(32)")
    .addColumn("rule", "varchar(255)")
    .addColumn("reasons", "text", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("recipients")
    .ifNotExists()
    .addColumn("message_id", "varchar(32)", (c) => c.notNull())
    .addColumn("address", "varchar(320)", (c) => c.notNull())
    .addColumn("status", "varchar(16)", (c) => c.notNull())
    .addColumn("response", "text")
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("recipients_pk", ["message_id", "address"])
    .execute();
  await db.schema
    .createTable("attempts")
    .ifNotExists()
    .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("message_id", "varchar(32)", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("recipient", "varchar(320)", (c) => c.notNull())
    .addColumn("outcome", "varchar(16)", (c) => c.notNull())
    .addColumn("response", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("rejections")
    .ifNotExists()
    .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("client_ip", "varchar(64)", (c) => c.notNull())
    .addColumn("mail_from", "varchar(320)", (c) => c.notNull())
    .addColumn("recipient", "varchar(320)", (c) => c.notNull())
    .addColumn("reply", "text", (c) => c.notNull())
    .execute();
  await db.schema
    .createTable("audit")
    .ifNotExists()
    .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("actor", "varchar(128)", (c) => c.notNull())
    .addColumn("action", "varchar(64)", (c) => c.notNull())
    .addColumn("message_id", "varchar(32)")
    .addColumn("detail", "text", (c) => c.notNull())
    .execute();
  await addSenderDomain(db);
  const indexes: [string, keyof TrackerDatabase, string[]][] = [
    ["messages_sender_domain_received_at", "messages", ["sender_domain", "received_at"]],
    ["messages_category_received_at", "messages", ["category", "received_at"]],
    ["recipients_address_message", "recipients", ["address", "message_id"]],
    ["audit_at", "audit", ["at"]],
    ["messages_received_at", "messages", ["received_at"]],
    ["messages_status_received_at", "messages", ["status", "received_at"]],
    ["messages_mail_from", "messages", ["mail_from"]],
    ["attempts_message", "attempts", ["message_id", "at"]],
    ["rejections_at", "rejections", ["at"]],
  ];
  for (const [name, table, columns] of indexes) {
    await db.schema.createIndex(name).ifNotExists().on(table).columns(columns).execute();
  }
  // recipients_address_message serves every lookup by address (and covers message_id): the
  // index on address alone, made by earlier versions, only cost a write per recipient.
  await db.schema.dropIndex("recipients_address").ifExists().execute();
}
