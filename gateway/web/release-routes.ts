/**
 * Release requests over HTTP:
 *
 *   GET  /release/:token                        the recipient's page (no sign-in: the signed link is the key)
 *   POST /release/:token                        asks for the release (a POST, so link scanners ask nothing)
 *   GET  /api/release-requests                  admin, helpdesk
 *   POST /api/release-requests/:id/approve      admin, helpdesk: releases the message
 *   POST /api/release-requests/:id/deny         admin, helpdesk: it stays quarantined
 */
import type { FastifyInstance } from "fastify";
import type { ReleaseRequests } from "../quarantine/release-requests";
import type { TrackerStore } from "../store/tracker";
import { type Auth, principalOf } from "./auth";
import { sendError } from "./errors";
import { escapeHtml, layout } from "./layout";

export function registerReleaseRoutes(
  app: FastifyInstance,
  options: { auth: Auth; tracker: TrackerStore; releaseRequests: ReleaseRequests },
): void {
  const { auth, tracker, releaseRequests } = options;
  const staff = auth.require(["admin", "helpdesk"]);
  const invalid = () =>
    layout("Link not valid", "<h1>This link is not valid</h1><p>It may have expired. Ask your IT helpdesk.</p>");

  app.get<{ Params: { token: string } }>("/release/:token", async (request, reply) => {
    const target = releaseRequests.verify(request.params.token);
    const story = target ? await tracker.story(target.id) : undefined;
    if (!target || !story) return reply.code(404).type("text/html").send(invalid());
    const pending = releaseRequests.list().some((r) => r.id === target.id && r.state === "pending");
    return reply.type("text/html").send(
      layout(
        "Release request",
        `<h1>A message held for ${escapeHtml(target.recipient)}</h1>
<p>From <strong>${escapeHtml(story.mailFrom || "<>")}</strong><br>Subject <strong>${escapeHtml(story.subject || "(no subject)")}</strong><br>Held as <strong>${escapeHtml(story.category ?? "?")}</strong></p>
${
  pending
    ? `<p class="note">Your request has been sent to the helpdesk.</p>`
    : story.status === "Quarantine"
      ? `<form method="post" action="/release/${escapeHtml(request.params.token)}"><button>Request release</button></form>`
      : `<p class="note">This message is no longer in quarantine (${escapeHtml(story.status)}).</p>`
}`,
      ),
    );
  });

  app.post<{ Params: { token: string } }>("/release/:token", async (request, reply) => {
    const made = await releaseRequests.request(request.params.token);
    if (!made) return reply.code(404).type("text/html").send(invalid());
    return reply.redirect(`/release/${encodeURIComponent(request.params.token)}`, 303);
  });

  app.get("/api/release-requests", { preHandler: staff }, async () => ({ requests: releaseRequests.list() }));

  for (const verb of ["approve", "deny"] as const)
    app.post<{ Params: { id: string } }>(
      `/api/release-requests/:id/${verb}`,
      { preHandler: staff },
      async (request, reply) => {
        const decided = await releaseRequests.decide(request.params.id, verb === "approve", principalOf(request).name);
        return decided ?? sendError(reply, "not_found", `no pending release request for ${request.params.id}`);
      },
    );
}
