/** The tracker store on real SQLite. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { RARE_MATCHES } from "../../gateway/store/subject-index";
import { openSqliteTracker } from "../../gateway/store/tracker";

const arrival = {
  id: "Q1",
  receivedAt: 1_000,
  clientIp: "192.0.2.1",
  helo: "mx.outside.example",
  tls: true,
  mailFrom: "a@outside.example",
  recipients: ["anna@northwind.example", "ben@northwind.example"],
  subject: "Quarterly report",
  size: 1234,
  direction: "inbound" as const,
};

describe("the tracker store", () => {
  it("lets a read see every write made before it, awaited or not (writes wait to be committed in groups)", async () => {
    const tracker = await openSqliteTracker(join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite"));
    void tracker.recordArrival({ ...arrival, recipients: ["anna@northwind.example"] });
    void tracker.recordAttempt({
      messageId: "Q1",
      at: 2_000,
      recipient: "anna@northwind.example",
      outcome: "delivered",
      response: "250 ok",
    });
    expect((await tracker.story("Q1"))?.status).toBe("Deliver");
    void tracker.recordArrival({ ...arrival, id: "Q2", recipients: ["anna@northwind.example"] });
    const page = await tracker.search({ subject: "quarterly report" });
    expect(page.messages.map((m) => m.id).sort()).toEqual(["Q1", "Q2"]);
    await tracker.close();
  });

  it("records the arrival, every attempt with the downstream reply, and derives the status", async () => {
    const tracker = await openSqliteTracker(join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite"));
    await tracker.recordArrival(arrival);
    expect((await tracker.story("Q1"))?.status).toBe("Pending");
    await tracker.recordAttempt({
      messageId: "Q1",
      at: 2_000,
      recipient: "anna@northwind.example",
      outcome: "delivered",
      response: "250 2.6.0 queued",
    });
    await tracker.recordAttempt({
      messageId: "Q1",
      at: 2_000,
      recipient: "ben@northwind.example",
      outcome: "temporary",
      response: "451 4.4.0 try later",
    });
    expect((await tracker.story("Q1"))?.status).toBe("Deferred");
    await tracker.recordAttempt({
      messageId: "Q1",
      at: 300_000,
      recipient: "ben@northwind.example",
      outcome: "delivered",
      response: "250 2.6.0 queued",
    });
    const story = await tracker.story("Q1");
    expect(story).toMatchObject({ status: "Deliver", subject: "Quarterly report", mailFrom: "a@outside.example" });
    expect(story?.recipients).toEqual([
      { address: "anna@northwind.example", status: "Deliver", response: "250 2.6.0 queued" },
      { address: "ben@northwind.example", status: "Deliver", response: "250 2.6.0 queued" },
    ]);
    expect(story?.attempts.map((a) => [a.recipient, a.outcome, a.response])).toEqual([
      ["anna@northwind.example", "delivered", "250 2.6.0 queued"],
      ["ben@northwind.example", "temporary", "451 4.4.0 try later"],
      ["ben@northwind.example", "delivered", "250 2.6.0 queued"],
    ]);
    await tracker.close();
  });

  it("marks a message Reject when every recipient was refused downstream, and keeps refused RCPTs", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    const tracker = await openSqliteTracker(path);
    await tracker.recordArrival({ ...arrival, id: "Q2", recipients: ["carla@northwind.example"] });
    await tracker.recordAttempt({
      messageId: "Q2",
      at: 2_000,
      recipient: "carla@northwind.example",
      outcome: "permanent",
      response: "550 5.1.1 unknown",
    });
    await tracker.recordRejection({
      at: 3_000,
      clientIp: "192.0.2.9",
      mailFrom: "x@outside.example",
      recipient: "ghost@northwind.example",
      reply: "550 5.1.1 <ghost@northwind.example>: Recipient address rejected: unverified address",
    });
    await tracker.close();
    const reopened = await openSqliteTracker(path); // what was written survives a restart
    expect((await reopened.story("Q2"))?.status).toBe("Reject");
    expect(await reopened.rejections()).toEqual([
      {
        recipient: "ghost@northwind.example",
        reply: "550 5.1.1 <ghost@northwind.example>: Recipient address rejected: unverified address",
        clientIp: "192.0.2.9",
      },
    ]);
    expect(await reopened.story("nope")).toBeUndefined();
    await reopened.close();
  });
});

describe("sender-domain search", () => {
  it("finds `*@domain` through its own column (not a subdomain, not a look-alike), also in a tracker made before that column", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    // A tracker from before `sender_domain`: the messages table as it was, with one message.
    const old = new Database(path);
    old.exec(`CREATE TABLE messages (id varchar(32) PRIMARY KEY, received_at bigint NOT NULL, client_ip varchar(64) NOT NULL,
      helo varchar(255) NOT NULL, tls integer NOT NULL, mail_from varchar(320) NOT NULL, subject varchar(998) NOT NULL,
      size bigint NOT NULL, direction varchar(16) NOT NULL, status varchar(16) NOT NULL, category varchar(32),
      rule varchar(255), reasons text NOT NULL, updated_at bigint NOT NULL)`);
    old
      .prepare(
        "INSERT INTO messages VALUES ('OLD1', 500, '192.0.2.1', 'x', 0, 'old@partner.example', 'before', 1, 'inbound', 'Deliver', NULL, NULL, '[]', 500)",
      )
      .run();
    old.close();

    const tracker = await openSqliteTracker(path);
    for (const [id, mailFrom] of [
      ["N1", "Carl@Partner.example"],
      ["N2", "x@mail.partner.example"],
      ["N3", "x@partner.example.evil"],
      ["N4", ""],
    ] as const)
      await tracker.recordArrival({ ...arrival, id, mailFrom, receivedAt: 1_000 + id.charCodeAt(1) });
    const ids = async (sender: string) => (await tracker.search({ sender })).messages.map((m) => m.id).sort();
    expect(await ids("*@partner.example")).toEqual(["N1", "OLD1"]);
    expect(await ids("*@PARTNER.EXAMPLE")).toEqual(["N1", "OLD1"]);
    expect(await ids("*@*.partner.example")).toEqual(["N2"]);
    expect(await ids("carl@partner.example")).toEqual(["N1"]);
    await tracker.close();
  });
});

describe("subject search", () => {
  it("finds a substring (ASCII case folded) through the trigram index, short terms and `%`/`_` literally, and forgets purged mail; also in a tracker made before the index", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    const first = await openSqliteTracker(path);
    await first.recordArrival({ ...arrival, id: "OLD1", subject: "Invoice 4711 overdue", receivedAt: 500 });
    await first.close();
    // A tracker from before the index: the same database without it.
    const old = new Database(path);
    old.exec("DROP TRIGGER messages_subject_insert; DROP TRIGGER messages_subject_delete;");
    old.exec("DROP TRIGGER messages_subject_update; DROP TABLE messages_subject; DROP TABLE messages_subject_pending;");
    old.close();

    const tracker = await openSqliteTracker(path);
    const subjects: [string, string][] = [
      ["S1", "Your INVOICE for March"],
      ["S2", "Re: invoices and receipts"],
      ["S3", "Lunch on Friday?"],
      ["S4", "Save 100% now — Größe XL"],
      ["S5", "a_b test"],
      ["S6", "ab test"],
      ["S9", "ÄNDERUNG Ihrer Bestellung"],
    ];
    for (const [id, subject] of subjects)
      await tracker.recordArrival({ ...arrival, id, subject, receivedAt: 1_000 + Number(id.slice(1)) });
    const ids = async (subject: string, from?: number) =>
      (await tracker.search({ subject, ...(from !== undefined ? { from } : {}) })).messages.map((m) => m.id).sort();
    expect(await ids("invoice")).toEqual(["OLD1", "S1", "S2"]);
    expect(await ids("Invoice", 1_000)).toEqual(["S1", "S2"]);
    expect(await ids("invoices and")).toEqual(["S2"]);
    expect(await ids("friday?")).toEqual(["S3"]);
    expect(await ids('"100%')).toEqual([]);
    expect(await ids("100%")).toEqual(["S4"]);
    expect(await ids("größe xl")).toEqual(["S4"]);
    // Case folds for ASCII letters, as SQLite's lower() (the scan) does.
    expect(await ids("ÄNDERUNG ihrer")).toEqual(["S9"]);
    expect(await ids("a_")).toEqual(["S5"]); // two characters: a scan, `_` literal
    expect(await ids("ab")).toEqual(["S6"]);
    // Purged mail leaves the index: SQLite gives the next message the purged one's rowid.
    await tracker.recordArrival({ ...arrival, id: "S7", subject: "Invoice final", receivedAt: 100 });
    expect(await tracker.purge(200)).toEqual(["S7"]);
    await tracker.recordArrival({ ...arrival, id: "S8", subject: "Lunch again", receivedAt: 1_008 });
    expect(await ids("invoice final")).toEqual([]);
    expect(await ids("lunch")).toEqual(["S3", "S8"]);
    await tracker.close();
  });

  it("indexes new mail in batches, not in its arrival: a search still finds it at once, purging it first leaves the index sound, and a tracker of the per-arrival trigger switches over", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    const pending = () => {
      const db = new Database(path, { readonly: true });
      try {
        return db.prepare("SELECT count(*) FROM messages_subject_pending").pluck().get();
      } finally {
        db.close();
      }
    };
    /** The index is consistent, and counts as many messages with "inv" as the tracker holds indexed. */
    const sound = () => {
      const db = new Database(path);
      try {
        db.exec("INSERT INTO messages_subject (messages_subject) VALUES ('integrity-check')"); // throws if not
        db.exec("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, messages_subject, row)");
        const indexed = db.prepare("SELECT doc FROM temp.vocab WHERE term = 'inv'").pluck().get() ?? 0;
        const held = db
          .prepare(
            "SELECT count(*) FROM messages WHERE lower(subject) LIKE '%inv%' AND rowid NOT IN (SELECT message FROM messages_subject_pending)",
          )
          .pluck()
          .get();
        expect(indexed).toBe(held);
      } finally {
        db.close();
      }
    };
    let tracker = await openSqliteTracker(path);
    await tracker.recordArrival({ ...arrival, id: "A1", subject: "Invoice alpha", receivedAt: 2_000 });
    expect(pending()).toBe(1); // noted by its arrival, not indexed in it
    expect((await tracker.search({ subject: "alpha" })).messages.map((m) => m.id)).toEqual(["A1"]);
    expect(pending()).toBe(0);
    await tracker.recordArrival({ ...arrival, id: "B1", subject: "Invoice beta", receivedAt: 100 });
    expect(await tracker.purge(1_000)).toEqual(["B1"]); // never indexed
    expect((await tracker.search({ subject: "invoice" })).messages.map((m) => m.id)).toEqual(["A1"]);
    await tracker.close();
    sound();

    // The version before kept the index with one trigram insert per arrival, and no pending table.
    const old = new Database(path);
    old.exec(`
      DROP TABLE messages_subject_pending;
      DROP TRIGGER messages_subject_insert; DROP TRIGGER messages_subject_delete; DROP TRIGGER messages_subject_update;
      CREATE TRIGGER messages_subject_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_subject (rowid, subject) VALUES (new.rowid, lower(new.subject));
      END;
      CREATE TRIGGER messages_subject_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_subject (messages_subject, rowid, subject) VALUES ('delete', old.rowid, lower(old.subject));
      END;
    `);
    old.close();
    tracker = await openSqliteTracker(path);
    await tracker.recordArrival({ ...arrival, id: "C1", subject: "Invoice gamma", receivedAt: 3_000 });
    expect(pending()).toBe(1);
    expect((await tracker.search({ subject: "invoice" })).messages.map((m) => m.id)).toEqual(["C1", "A1"]);
    expect(await tracker.purge(2_500)).toEqual(["A1"]); // indexed by the old trigger, taken out of the index
    expect((await tracker.search({ subject: "alpha" })).messages).toEqual([]);
    await tracker.close();
    sound();
  });

  it("keeps recording when the background indexing fails, and a search reports the failure", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    const tracker = await openSqliteTracker(path);
    const other = new Database(path);
    other.exec("DROP TABLE messages_subject"); // the index is gone behind the tracker's back
    other.close();
    await tracker.recordArrival({ ...arrival, id: "F1" });
    await new Promise((resolve) => setTimeout(resolve, 1_300)); // a tick of the indexing timer fails here
    await tracker.recordArrival({ ...arrival, id: "F2" });
    expect((await tracker.story("F2"))?.subject).toBe("Quarterly report");
    await expect(async () => tracker.search({ subject: "quarterly" })).rejects.toThrow(/messages_subject/);
    await tracker.close(); // closes all the same
  });

  it("pages through a common term (more matches than the index is asked for) newest first, as the scan does", async () => {
    const tracker = await openSqliteTracker(join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite"));
    for (let i = 0; i < RARE_MATCHES + 100; i++)
      await tracker.recordArrival({
        ...arrival,
        id: `N${i}`,
        subject: `Weekly NEWSLETTER no. ${i}`,
        receivedAt: 10_000 + i,
      });
    await tracker.recordArrival({
      ...arrival,
      id: "R1",
      subject: "Newsletter unsubscribe confirmation",
      receivedAt: 5,
    });
    const first = await tracker.search({ subject: "newsletter", limit: 100 });
    expect(first.messages.map((m) => m.id)).toEqual(Array.from({ length: 100 }, (_, k) => `N${RARE_MATCHES + 99 - k}`));
    const second = await tracker.search({ subject: "newsletter", limit: 100, cursor: first.next! });
    expect(second.messages[0]?.id).toBe(`N${RARE_MATCHES - 1}`);
    expect((await tracker.search({ subject: "unsubscribe conf" })).messages.map((m) => m.id)).toEqual(["R1"]);
    await tracker.close();
  });

  it("looks recipients up by the (address, message) index, and drops the redundant address index of earlier versions", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-tracker-")), "tracker.sqlite");
    await (await openSqliteTracker(path)).close();
    const old = new Database(path);
    old.exec("CREATE INDEX recipients_address ON recipients (address)"); // as an earlier version made it
    old.close();
    const tracker = await openSqliteTracker(path);
    await tracker.recordArrival(arrival);
    expect((await tracker.search({ recipient: "Ben@northwind.example" })).messages.map((m) => m.id)).toEqual(["Q1"]);
    await tracker.close();
    const db = new Database(path, { readonly: true });
    const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recipients'").all();
    expect(indexes.map((i) => (i as { name: string }).name)).not.toContain("recipients_address");
    const plan = db.prepare("EXPLAIN QUERY PLAN SELECT message_id FROM recipients WHERE address = ?").all("x");
    expect(JSON.stringify(plan)).toMatch(/USING COVERING INDEX recipients_address_message/);
    db.close();
  });
});
