/**
 * The Live Email Tracker page: server-rendered HTML, no build step, no script needed. Sign-in
 * (`/login`), search (`/`: sender, recipient, subject, status, category, time), one message's
 * story (`/messages/:id`: status with the rule marker, category, every reason, recipients,
 * delivery attempts with the downstream reply) and the actions the role allows, as forms that
 * carry the session's CSRF token. Everything is escaped; nothing from a message is trusted.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Quarantine } from "../quarantine/quarantine";
import type { ReleaseRequests } from "../quarantine/release-requests";
import type { TrackerStore } from "../store/tracker";
import type { Auth, Principal } from "./auth";
import { escapeHtml as escape, layout } from "./layout";
import { STATUSES, type SearchQuery, filterFrom, quarantineAction } from "./tracker-routes";

function statusCell(status: string, rule: string | null): string {
  const marker = rule ? `<span class="rule" title="${escape(rule)}" aria-label="matched ${escape(rule)}">◆</span>` : "";
  return `<span class="status ${escape(status)}">${escape(status)}</span>${marker}`;
}

const DEFAULT_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
/** "live": the result page reloads itself, so new mail appears without a click (no script needed). */
const LIVE_REFRESH_SECONDS = 15;

export function registerPage(
  app: FastifyInstance,
  options: { auth: Auth; tracker: TrackerStore; quarantine: Quarantine; releaseRequests?: ReleaseRequests },
): void {
  const { auth, tracker, quarantine, releaseRequests } = options;
  const secure = (request: FastifyRequest) =>
    request.headers["x-forwarded-proto"] === "https" || request.protocol === "https";
  const signedIn = (request: FastifyRequest, reply: FastifyReply): Principal | undefined => {
    const principal = auth.principal(request);
    if (!principal?.session) {
      void reply.redirect("/login", 303);
      return undefined;
    }
    return principal;
  };

  app.get("/login", async (_request, reply) =>
    reply.type("text/html").send(
      layout(
        "Sign in",
        `<h1>Sign in</h1><form method="post" action="/login"><p><label>Account <input name="name" autocomplete="username" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p><button>Sign in</button></form>`,
      ),
    ),
  );

  app.post<{ Body: { name?: string; password?: string } }>("/login", async (request, reply) => {
    const session = auth.login(String(request.body?.name ?? ""), String(request.body?.password ?? ""));
    if (!session)
      return reply
        .code(401)
        .type("text/html")
        .send(
          layout(
            "Sign in",
            `<h1>Sign in</h1><p class="note">Wrong account or password.</p><p><a href="/login">Try again</a></p>`,
          ),
        );
    return reply.header("set-cookie", auth.cookieFor(session, secure(request))).redirect("/", 303);
  });

  app.post("/logout", { preHandler: auth.require(["admin", "helpdesk"]) }, async (request, reply) => {
    auth.logout(request);
    return reply.header("set-cookie", auth.cookieFor(undefined, secure(request))).redirect("/login", 303);
  });

  app.get<{ Querystring: SearchQuery & { live?: string } }>("/", async (request, reply) => {
    const principal = signedIn(request, reply);
    if (!principal) return reply;
    const q = request.query;
    // Without a time range the page looks at the last week: a subject search over every record
    // of a large tracker scans them all (bench/tracker-search.ts), a week's stays fast.
    const windowed = !q.from && !q.to;
    const { live: _live, ...search } = q;
    const filter = filterFrom(windowed ? { ...search, from: String(Date.now() - DEFAULT_WINDOW_MS) } : search);
    const page = typeof filter === "string" ? undefined : await tracker.search(filter);
    const input = (name: keyof SearchQuery, label: string) =>
      `<label>${label} <input name="${name}" value="${escape(q[name])}"></label>`;
    const select = (name: "status" | "category", label: string, values: readonly string[]) =>
      `<label>${label} <select name="${name}"><option value="">any</option>${values
        .map((v) => `<option${q[name] === v ? " selected" : ""}>${escape(v)}</option>`)
        .join("")}</select></label>`;
    const rows = (page?.messages ?? [])
      .map(
        (m) => `<tr><td>${escape(new Date(m.receivedAt).toISOString().replace("T", " ").slice(0, 19))}</td>
<td>${escape(m.mailFrom || "<>")}</td><td>${escape(m.recipients)}</td><td><a href="/messages/${escape(m.id)}">${escape(m.subject || "(no subject)")}</a></td>
<td>${statusCell(m.status, m.rule)}</td><td>${escape(m.category ?? "")}</td></tr>`,
      )
      .join("");
    const next = page?.next
      ? `<p><a href="/?${new URLSearchParams({ ...(q as Record<string, string>), cursor: page.next }).toString()}">Older →</a></p>`
      : "";
    return reply.type("text/html").send(
      layout(
        "Tracker",
        `<form class="search" method="get" action="/">${input("sender", "Sender")}${input("recipient", "Recipient")}${input("subject", "Subject")}
${select("status", "Status", STATUSES)}${select("category", "Category", ["spam", "infomail", "phishing", "malware", "banned", "impersonation"])}
${input("from", "From")}${input("to", "To")}<label><input type="checkbox" name="live" value="1"${q.live ? " checked" : ""}> live (refresh every ${LIVE_REFRESH_SECONDS} s)</label><button>Search</button></form>
${typeof filter === "string" ? `<p class="note">${escape(filter)}</p>` : windowed ? `<p>The last 7 days; set From/To (ISO time) for older mail.</p>` : ""}
<table><thead><tr><th>Received (UTC)</th><th>Sender</th><th>Recipients</th><th>Subject</th><th>Status</th><th>Category</th></tr></thead><tbody>${rows || `<tr><td colspan="6">No messages match.</td></tr>`}</tbody></table>${next}`,
        principal,
        q.live ? LIVE_REFRESH_SECONDS : undefined,
      ),
    );
  });

  app.get<{ Params: { id: string }; Querystring: { done?: string } }>("/messages/:id", async (request, reply) => {
    const principal = signedIn(request, reply);
    if (!principal) return reply;
    const story = await tracker.story(request.params.id);
    if (!story)
      return reply
        .code(404)
        .type("text/html")
        .send(layout("Not found", "<p>No such message.</p>", principal));
    const csrf = `<input type="hidden" name="_csrf" value="${escape(principal.session?.csrf)}">`;
    const action = (path: string, label: string) =>
      `<form method="post" action="/messages/${escape(story.id)}/${path}">${csrf}<button>${label}</button></form>`;
    const pending = releaseRequests?.list().find((r) => r.id === story.id && r.state === "pending");
    const kept = story.status === "Quarantine" || pending !== undefined;
    const actions = [
      pending
        ? `<p class="note">${escape(pending.recipient)} asked for its release on ${escape(new Date(pending.requestedAt).toISOString())}.</p>${action("approve", "Approve request")}${action("deny", "Deny request")}`
        : "",
      kept && !pending ? action("release", "Release") : "",
      kept ? `<a href="/api/messages/${escape(story.id)}/eml">Download .eml</a>` : "",
      kept && principal.role === "admin" ? action("delete", "Delete") : "",
      principal.role === "admin" && story.mailFrom ? action("allow", "Propose allow sender") : "",
      principal.role === "admin" && story.mailFrom ? action("block", "Propose block sender") : "",
    ].join("");
    const reasons = (
      story.reasons as { detector?: string; category?: string; symbol?: string; score?: number; detail?: string }[]
    )
      .map(
        (r) =>
          `<tr><td>${escape(r.detector)}</td><td>${escape(r.category ?? "")}</td><td><code>${escape(r.symbol ?? "")}</code></td><td>${escape(r.score ?? "")}</td><td>${escape(r.detail)}</td></tr>`,
      )
      .join("");
    const recipients = story.recipients
      .map(
        (r) =>
          `<tr><td>${escape(r.address)}</td><td>${statusCell(r.status, null)}</td><td>${escape(r.response ?? "")}</td></tr>`,
      )
      .join("");
    const attempts = story.attempts
      .map(
        (a) =>
          `<tr><td>${escape(new Date(a.at).toISOString())}</td><td>${escape(a.recipient)}</td><td>${escape(a.outcome)}</td><td>${escape(a.response)}</td></tr>`,
      )
      .join("");
    return reply.type("text/html").send(
      layout(
        story.subject || story.id,
        `${request.query.done ? `<p class="note">${escape(request.query.done)}</p>` : ""}
<h1>${escape(story.subject || "(no subject)")}</h1>
<p>From <strong>${escape(story.mailFrom || "<>")}</strong> · ${escape(story.direction)} · id <code>${escape(story.id)}</code></p>
<p>Status ${statusCell(story.status, story.rule)} ${story.category ? `· category <strong class="category">${escape(story.category)}</strong>` : "· no category"}${story.rule ? ` · rule <code>${escape(story.rule)}</code>` : ""}</p>
<div class="actions">${actions}</div>
<h2>Why</h2><table class="reasons"><thead><tr><th>Detector</th><th>Category</th><th>Symbol</th><th>Score</th><th>Detail</th></tr></thead><tbody>${reasons || `<tr><td colspan="5">No reasons recorded.</td></tr>`}</tbody></table>
<h2>Recipients</h2><table><thead><tr><th>Address</th><th>Status</th><th>Last reply</th></tr></thead><tbody>${recipients}</tbody></table>
<h2>Delivery attempts</h2><table><thead><tr><th>At</th><th>Recipient</th><th>Outcome</th><th>Downstream reply</th></tr></thead><tbody>${attempts || `<tr><td colspan="4">None yet.</td></tr>`}</tbody></table>`,
        principal,
      ),
    );
  });

  const post = (path: string, roles: ("admin" | "helpdesk")[], run: (id: string, actor: string) => Promise<string>) =>
    app.post<{ Params: { id: string } }>(
      `/messages/:id/${path}`,
      { preHandler: auth.require(roles) },
      async (request, reply) =>
        quarantineAction(reply, async () => {
          const actor = auth.principal(request)?.name ?? "?";
          const done = await run(request.params.id, actor);
          return reply.redirect(
            `/messages/${encodeURIComponent(request.params.id)}?done=${encodeURIComponent(done)}`,
            303,
          );
        }),
    );
  post("release", ["admin", "helpdesk"], async (id, actor) => {
    await quarantine.release(id, actor);
    return "Released: the original is on its way to the mailbox.";
  });
  post("delete", ["admin"], async (id, actor) => {
    await quarantine.remove(id, actor);
    return "Deleted.";
  });
  post("approve", ["admin", "helpdesk"], async (id, actor) => {
    if (!(await releaseRequests?.decide(id, true, actor))) return "No pending request.";
    return "Request approved: the message is released.";
  });
  post("deny", ["admin", "helpdesk"], async (id, actor) => {
    if (!(await releaseRequests?.decide(id, false, actor))) return "No pending request.";
    return "Request denied: the message stays in quarantine.";
  });
  post("allow", ["admin"], async (id, actor) => `Proposed: ${await quarantine.proposeRule(id, "allow", actor)}`);
  post("block", ["admin"], async (id, actor) => `Proposed: ${await quarantine.proposeRule(id, "block", actor)}`);
}
