/**
 * The tracker API and page over app.inject(): authentication and roles on every route, search
 * and paging, a message's story, the quarantined original, release (back to delivery), delete,
 * rule proposals, the audit log, CSRF on the page's forms, and retention.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../gateway/log";
import { type Quarantine, createQuarantine } from "../../gateway/quarantine/quarantine";
import { type Spool, createSpool } from "../../gateway/queue/spool";
import { parseRulesCsv } from "../../gateway/rules/rules";
import { type TrackerStore, openSqliteTracker } from "../../gateway/store/tracker";
import { build } from "../../gateway/web/app";
import { createAuth, hashPassword, newApiToken } from "../../gateway/web/auth";

const admin = newApiToken();
const helpdesk = newApiToken();
const PASSWORD = "correct horse battery staple";
let dir: string;
let spool: Spool;
let tracker: TrackerStore;
let quarantine: Quarantine;
let app: FastifyInstance;
const released: string[] = [];
const ORIGINAL =
  "From: Spammer <deals@cheap.example>\r\nTo: anna.berg@northwind.example\r\nSubject: Cheap watches\r\n\r\nBuy now.\r\n";

async function keep(subject: string, receivedAt: number, state: "quarantine" | "incoming" = "quarantine") {
  const { id } = await spool.accept(
    {
      mailFrom: "deals@cheap.example",
      rcptTo: ["anna.berg@northwind.example"],
      receivedAt: new Date(receivedAt).toISOString(),
      client: { ip: "203.0.113.9", helo: "x", tls: false },
    },
    Buffer.alloc(0),
    Readable.from([Buffer.from(ORIGINAL.replace("Cheap watches", subject))]),
    () => false,
    undefined,
    async () => ({ to: state }),
  );
  await tracker.recordArrival({
    id,
    receivedAt,
    clientIp: "203.0.113.9",
    helo: "x",
    tls: false,
    mailFrom: "Deals@Cheap.example",
    recipients: ["anna.berg@northwind.example"],
    subject,
    size: ORIGINAL.length,
    direction: "inbound",
    verdict:
      state === "quarantine"
        ? {
            status: "Quarantine",
            category: "spam",
            rule: null,
            reasons: [{ detector: "rspamd", category: "spam", score: 15, detail: "rspamd score 15 of 15 (reject)" }],
          }
        : { status: "Pending", category: null, rule: "customer allow rule stacks/acme/rules.csv:2", reasons: [] },
  });
  return id;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "moat-tracker-api-"));
  spool = createSpool(join(dir, "queue"));
  await spool.recover();
  tracker = await openSqliteTracker(join(dir, "tracker.sqlite"));
  quarantine = createQuarantine({
    spool,
    tracker,
    dataDir: dir,
    onReleased: (id) => released.push(id),
    log: silentLogger,
  });
  const auth = createAuth({
    tokens: [
      { name: "ops-bot", role: "admin", sha256: admin.sha256 },
      { name: "desk-bot", role: "helpdesk", sha256: helpdesk.sha256 },
    ],
    admins: [
      { name: "alice", role: "admin", passwordHash: hashPassword(PASSWORD) },
      { name: "hank", role: "helpdesk", passwordHash: hashPassword(PASSWORD) },
    ],
  });
  app = build({
    health: async () => ({ status: "ok", customer: "t", checks: {} }),
    tracker: { auth, tracker, quarantine },
  });
});
afterAll(async () => {
  await app?.close();
  await tracker?.close();
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("authentication and roles", () => {
  it("refuses every route without credentials, and the page sends you to sign in", async () => {
    const id = await keep("unauth", Date.now());
    for (const [method, url] of [
      ["GET", "/api/messages"],
      ["GET", `/api/messages/${id}`],
      ["GET", `/api/messages/${id}/eml`],
      ["POST", `/api/messages/${id}/release`],
      ["POST", `/api/messages/${id}/delete`],
      ["GET", "/api/audit"],
    ] as const) {
      const response = await app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(401);
      expect(response.headers["www-authenticate"]).toMatch(/^Bearer/);
    }
    expect((await app.inject({ url: "/api/messages", headers: bearer("moat_not-a-token") })).statusCode).toBe(401);
    const page = await app.inject({ url: "/" });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe("/login");
    expect((await app.inject({ method: "POST", url: `/messages/${id}/release` })).statusCode).toBe(401);
    expect(await quarantine.original(id)).toBeDefined(); // nothing happened to it
  });

  it("helpdesk reads and releases; deleting, proposing rules and the audit log are for admins", async () => {
    const id = await keep("roles", Date.now());
    expect((await app.inject({ url: "/api/messages", headers: bearer(helpdesk.token) })).statusCode).toBe(200);
    for (const [url, payload] of [
      [`/api/messages/${id}/delete`, undefined],
      [`/api/messages/${id}/propose`, { kind: "block" }],
    ] as const) {
      const response = await app.inject({
        method: "POST",
        url,
        headers: bearer(helpdesk.token),
        ...(payload ? { payload } : {}),
      });
      expect(response.statusCode, url).toBe(403);
      expect(response.json()).toMatchObject({ error: { code: "forbidden" } });
    }
    expect((await app.inject({ url: "/api/audit", headers: bearer(helpdesk.token) })).statusCode).toBe(403);
    const release = await app.inject({
      method: "POST",
      url: `/api/messages/${id}/release`,
      headers: bearer(helpdesk.token),
    });
    expect(release.json()).toMatchObject({ id, released: true });
    expect(released).toContain(id);
    expect(await spool.list("incoming")).toContain(id);
    expect((await tracker.story(id))?.status).toBe("Pending");
  });
});

describe("search and the story", () => {
  it("finds by recipient, sender (case-insensitive, wildcards), subject, status and category, newest first, paged", async () => {
    const base = Date.parse("2026-01-01T00:00:00Z");
    for (let i = 0; i < 30; i++) await keep(`Paged ${i}`, base + i * 1000);
    const search = async (query: string, token = helpdesk.token) =>
      (await app.inject({ url: `/api/messages?${query}`, headers: bearer(token) })).json() as {
        messages: { id: string; subject: string; mailFrom: string; status: string; category: string | null }[];
        next: string | null;
      };
    const first = await search("subject=paged&limit=20");
    expect(first.messages.map((m) => m.subject).slice(0, 3)).toEqual(["Paged 29", "Paged 28", "Paged 27"]);
    expect(first.messages).toHaveLength(20);
    const second = await search(`subject=paged&limit=20&cursor=${first.next}`);
    expect(second.messages).toHaveLength(10);
    expect(second.next).toBeNull();
    expect((await search("sender=DEALS@cheap.example&subject=paged")).messages).toHaveLength(30);
    expect((await search("sender=*@cheap.example&subject=paged&limit=200")).messages).toHaveLength(30);
    expect(
      (await search("recipient=anna.berg@northwind.example&subject=Paged 7")).messages.map((m) => m.subject),
    ).toEqual(["Paged 7"]);
    expect((await search("status=Quarantine&category=spam&subject=paged&limit=5")).messages).toHaveLength(5);
    expect((await search(`subject=paged&from=${new Date(base + 25_000).toISOString()}`)).messages).toHaveLength(5);
    const bad = await app.inject({ url: "/api/messages?status=Lost", headers: bearer(helpdesk.token) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^status: one of Deliver/);
  });

  it("tells one message's story and serves the kept original byte for byte", async () => {
    const id = await keep("Story time", Date.now());
    const story = (await app.inject({ url: `/api/messages/${id}`, headers: bearer(helpdesk.token) })).json();
    expect(story).toMatchObject({ id, status: "Quarantine", category: "spam", mailFrom: "deals@cheap.example" });
    expect(story.reasons[0]).toMatchObject({ detector: "rspamd", score: 15 });
    const eml = await app.inject({ url: `/api/messages/${id}/eml`, headers: bearer(helpdesk.token) });
    expect(eml.headers["content-type"]).toMatch(/^message\/rfc822/);
    expect(eml.body).toBe(ORIGINAL.replace("Cheap watches", "Story time"));
    expect((await app.inject({ url: "/api/messages/NOSUCHID123", headers: bearer(helpdesk.token) })).statusCode).toBe(
      404,
    );
  });
});

describe("admin actions", () => {
  it("deletes, proposes rules in the rules CSV format, and keeps an audit log", async () => {
    const id = await keep("Delete me", Date.now());
    const deleted = await app.inject({
      method: "POST",
      url: `/api/messages/${id}/delete`,
      headers: bearer(admin.token),
    });
    expect(deleted.json()).toEqual({ id, status: "Delete" });
    expect(await spool.list("quarantine")).not.toContain(id);
    expect(
      (await app.inject({ method: "POST", url: `/api/messages/${id}/release`, headers: bearer(admin.token) }))
        .statusCode,
    ).toBe(404);

    const proposal = await app.inject({
      method: "POST",
      url: `/api/messages/${id}/propose`,
      headers: bearer(admin.token),
      payload: { kind: "block" },
    });
    expect(proposal.json().proposal).toMatch(/^block,deals@cheap\.example,,,proposed by ops-bot from message /);
    const csv = readFileSync(join(dir, "rule-proposals.csv"), "utf8");
    expect(
      parseRulesCsv(csv, { file: "rule-proposals.csv", scope: "customer" }, ["northwind.example"]).problems,
    ).toEqual([]);

    const audit = (await app.inject({ url: "/api/audit", headers: bearer(admin.token) })).json().entries as {
      actor: string;
      action: string;
      messageId: string;
    }[];
    expect(audit.filter((e) => e.messageId === id).map((e) => `${e.actor} ${e.action}`)).toEqual([
      "ops-bot propose-block",
      "ops-bot delete",
    ]);
  });

  it("purges tracker records and quarantined bodies past their retention", async () => {
    const old = await keep("Ancient", Date.now() - 400 * 24 * 60 * 60 * 1000);
    const { utimesSync } = await import("node:fs");
    const past = new Date(Date.now() - 40 * 24 * 60 * 60 * 1000);
    utimesSync(join(spool.dir("quarantine"), old), past, past);
    const result = await quarantine.purge({ trackerDays: 90, quarantineDays: 30 });
    expect(result.bodies).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(spool.dir("quarantine"), old))).toBe(false);
    expect(await tracker.story(old)).toBeUndefined();
  });
});

describe("the page", () => {
  it("signs in with a password, shows the tracker, and refuses a form without the CSRF token", async () => {
    const wrong = await app.inject({
      method: "POST",
      url: "/login",
      payload: "name=hank&password=nope",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(wrong.statusCode).toBe(401);
    const login = await app.inject({
      method: "POST",
      url: "/login",
      payload: `name=hank&password=${encodeURIComponent(PASSWORD)}`,
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(login.statusCode).toBe(303);
    const cookie = String(login.headers["set-cookie"]).split(";")[0] as string;
    expect(String(login.headers["set-cookie"])).toMatch(/HttpOnly; SameSite=Strict/);
    const id = await keep("Page <script>alert(1)</script>", Date.now());
    const list = await app.inject({ url: "/?recipient=anna.berg%40northwind.example&live=1", headers: { cookie } });
    expect(list.body).toContain('<meta http-equiv="refresh" content="15">'); // live: the page reloads itself
    expect(list.body).toContain("Page &lt;script&gt;alert(1)&lt;/script&gt;");
    expect(list.body).not.toContain("<script>alert(1)");
    const detail = await app.inject({ url: `/messages/${id}`, headers: { cookie } });
    expect(detail.body).toMatch(/class="status Quarantine"/);
    expect(detail.body).toContain("rspamd score 15 of 15 (reject)");
    const csrf = /name="_csrf" value="([^"]+)"/.exec(detail.body)?.[1] ?? "";
    const form = { "content-type": "application/x-www-form-urlencoded", cookie };
    expect(
      (await app.inject({ method: "POST", url: `/messages/${id}/release`, headers: form, payload: "" })).statusCode,
    ).toBe(403);
    expect(
      (await app.inject({ method: "POST", url: `/messages/${id}/delete`, headers: form, payload: `_csrf=${csrf}` }))
        .statusCode,
    ).toBe(403); // helpdesk
    const release = await app.inject({
      method: "POST",
      url: `/messages/${id}/release`,
      headers: form,
      payload: `_csrf=${csrf}`,
    });
    expect(release.statusCode).toBe(303);
    expect(released).toContain(id);
    const logout = await app.inject({ method: "POST", url: "/logout", headers: form, payload: `_csrf=${csrf}` });
    expect(logout.statusCode).toBe(303);
    expect((await app.inject({ url: "/", headers: { cookie } })).statusCode).toBe(303);
  });
});
