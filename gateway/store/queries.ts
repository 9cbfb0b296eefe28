/**
 * The tracker's read side: search with filters and pagination, and the audit log. Plain
 * Kysely over the tables in schema.ts, so the same queries run on SQLite and PostgreSQL
 * (the writes are tracker.ts's prepared statements).
 *
 * Search is newest first by (received_at, id), paged by a cursor (the last row's pair): stable
 * while new mail arrives, and index-friendly at a million rows. Sender and recipient match
 * exactly (addresses are stored lower-cased) or with `*` wildcards (`*@partner.example`, which
 * uses the sender-domain index);
 * subject matches a substring, case-insensitively for ASCII letters (as SQLite's lower()) —
 * on SQLite a rare term through the trigram index (subject-index.ts), otherwise by a scan.
 */
import { type Kysely, sql } from "kysely";
import type { TrackerDatabase, TrackerStatus } from "./schema";
import { RARE_MATCHES, SUBJECT_INDEX, asciiLower, indexable, subjectPhrase } from "./subject-index";

export const SEARCH_PAGE_MAX = 200;

export interface SearchFilter {
  readonly sender?: string;
  readonly recipient?: string;
  readonly subject?: string;
  readonly status?: TrackerStatus;
  readonly category?: string;
  /** Milliseconds since the epoch, inclusive / exclusive. */
  readonly from?: number;
  readonly to?: number;
  readonly limit?: number;
  /** The `next` of the previous page. */
  readonly cursor?: string;
}

export interface MessageRow {
  readonly id: string;
  readonly receivedAt: number;
  readonly mailFrom: string;
  readonly recipients: string;
  readonly subject: string;
  readonly status: TrackerStatus;
  readonly category: string | null;
  readonly rule: string | null;
  readonly direction: string;
  readonly size: number;
}

export interface SearchPage {
  readonly messages: readonly MessageRow[];
  readonly next: string | null;
}

function pattern(value: string): { op: "=" | "like"; value: string } {
  const v = value.trim().toLowerCase();
  if (!v.includes("*")) return { op: "=", value: v };
  return { op: "like", value: v.replace(/\*/g, "%") };
}

export interface SearchOptions {
  /** The database has the SQLite trigram index of subjects (subject-index.ts). */
  readonly subjectIndex?: boolean;
}

const INDEX = sql.table(SUBJECT_INDEX);

/** At most RARE_MATCHES messages have the phrase (subject-index.ts: which way a search goes). */
async function isRare(db: Kysely<TrackerDatabase>, phrase: string): Promise<boolean> {
  const { rows } = await sql<{ n: number }>`
    SELECT count(*) AS n FROM (SELECT 1 FROM ${INDEX} WHERE ${INDEX} MATCH ${phrase} LIMIT ${RARE_MATCHES + 1})
  `.execute(db);
  return (rows[0]?.n ?? 0) <= RARE_MATCHES;
}

export async function searchMessages(
  db: Kysely<TrackerDatabase>,
  filter: SearchFilter,
  options: SearchOptions = {},
): Promise<SearchPage> {
  const limit = Math.min(Math.max(1, filter.limit ?? 50), SEARCH_PAGE_MAX);
  let query = db
    .selectFrom("messages")
    .select(["id", "received_at", "mail_from", "subject", "status", "category", "rule", "direction", "size"]);
  if (filter.sender) {
    const p = pattern(filter.sender);
    // `*@domain` (the common wildcard: everything from one sender domain) has its own index.
    const domainOnly = /^%@([^%]+)$/.exec(p.value)?.[1];
    query =
      p.op === "="
        ? query.where("mail_from", "=", p.value)
        : domainOnly
          ? query.where("sender_domain", "=", domainOnly)
          : query.where(sql`lower(mail_from)`, "like", p.value);
  }
  if (filter.recipient) {
    const p = pattern(filter.recipient);
    query = query.where("id", "in", (sub) => {
      const base = sub.selectFrom("recipients").select("message_id");
      return p.op === "=" ? base.where("address", "=", p.value) : base.where(sql`lower(address)`, "like", p.value);
    });
  }
  if (filter.subject) {
    const phrase = subjectPhrase(filter.subject);
    if (options.subjectIndex && indexable(filter.subject) && (await isRare(db, phrase)))
      query = query.where(sql<boolean>`messages.rowid IN (SELECT rowid FROM ${INDEX} WHERE ${INDEX} MATCH ${phrase})`);
    else {
      // `%` and `_` in the term are themselves, not wildcards.
      const like = `%${asciiLower(filter.subject).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      query = query.where(sql<boolean>`lower(subject) LIKE ${like} ESCAPE '\\'`);
    }
  }
  if (filter.status) query = query.where("status", "=", filter.status);
  if (filter.category) query = query.where("category", "=", filter.category);
  if (filter.from !== undefined) query = query.where("received_at", ">=", filter.from);
  if (filter.to !== undefined) query = query.where("received_at", "<", filter.to);
  if (filter.cursor) {
    const [at, id] = Buffer.from(filter.cursor, "base64url").toString().split("|");
    query = query.where((eb) =>
      eb.or([
        eb("received_at", "<", Number(at)),
        eb.and([eb("received_at", "=", Number(at)), eb("id", "<", id ?? "")]),
      ]),
    );
  }
  const rows = await query
    .orderBy("received_at", "desc")
    .orderBy("id", "desc")
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  const ids = page.map((r) => r.id);
  const recipients = ids.length
    ? await db.selectFrom("recipients").select(["message_id", "address"]).where("message_id", "in", ids).execute()
    : [];
  const byMessage = new Map<string, string[]>();
  for (const r of recipients) byMessage.set(r.message_id, [...(byMessage.get(r.message_id) ?? []), r.address]);
  const last = page[page.length - 1];
  return {
    messages: page.map((r) => ({
      id: r.id,
      receivedAt: Number(r.received_at),
      mailFrom: r.mail_from,
      recipients: (byMessage.get(r.id) ?? []).join(", "),
      subject: r.subject,
      status: r.status,
      category: r.category,
      rule: r.rule,
      direction: r.direction,
      size: Number(r.size),
    })),
    next: rows.length > limit && last ? Buffer.from(`${last.received_at}|${last.id}`).toString("base64url") : null,
  };
}

export async function auditLog(db: Kysely<TrackerDatabase>, limit = 100) {
  const rows = await db.selectFrom("audit").selectAll().orderBy("id", "desc").limit(limit).execute();
  return rows.map((r) => ({
    at: Number(r.at),
    actor: r.actor,
    action: r.action,
    messageId: r.message_id,
    detail: r.detail,
  }));
}
