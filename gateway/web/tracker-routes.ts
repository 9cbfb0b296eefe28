/**
 * The tracker API (JSON), behind auth.ts:
 *
 *   GET  /api/messages?sender&recipient&subject&status&category&from&to&limit&cursor   admin, helpdesk
 *   GET  /api/messages/:id            the full story: verdict, reasons, rule, recipients, attempts
 *   GET  /api/messages/:id/eml        the kept original (quarantine or hold), as message/rfc822
 *   POST /api/messages/:id/release    delivers the original unchanged            admin, helpdesk
 *   POST /api/messages/:id/delete     removes it from quarantine                 admin
 *   POST /api/messages/:id/propose    {"kind": "allow"|"block"}: a rule proposal admin
 *   GET  /api/audit                   who did what                               admin
 *
 * `from`/`to` are ISO times or milliseconds. Errors from the catalogue (errors.ts).
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { QuarantineError, type Quarantine } from "../quarantine/quarantine";
import type { ReleaseRequests } from "../quarantine/release-requests";
import type { TrackerStatus } from "../store/schema";
import type { TrackerStore } from "../store/tracker";
import { type Auth, principalOf } from "./auth";
import { sendError } from "./errors";

export const STATUSES: readonly TrackerStatus[] = ["Deliver", "Quarantine", "Delete", "Reject", "Pending", "Deferred"];

export interface TrackerRoutesOptions {
  readonly auth: Auth;
  readonly tracker: TrackerStore;
  readonly quarantine: Quarantine;
  readonly releaseRequests?: ReleaseRequests;
}

function time(value: string | undefined): number | undefined | "bad" {
  if (value === undefined || value === "") return undefined;
  const number = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  return Number.isFinite(number) ? number : "bad";
}

export type SearchQuery = Partial<
  Record<"sender" | "recipient" | "subject" | "status" | "category" | "from" | "to" | "limit" | "cursor", string>
>;

/** Turns query parameters into a search filter, or names the one that is wrong. */
export function filterFrom(query: SearchQuery): Parameters<TrackerStore["search"]>[0] | string {
  const from = time(query.from);
  const to = time(query.to);
  if (from === "bad") return "from: not a time (ISO 8601 or milliseconds)";
  if (to === "bad") return "to: not a time (ISO 8601 or milliseconds)";
  if (query.status && !STATUSES.includes(query.status as TrackerStatus)) return `status: one of ${STATUSES.join(", ")}`;
  const limit = query.limit ? Number(query.limit) : undefined;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) return "limit: a positive integer";
  return {
    ...(query.sender ? { sender: query.sender } : {}),
    ...(query.recipient ? { recipient: query.recipient } : {}),
    ...(query.subject ? { subject: query.subject } : {}),
    ...(query.status ? { status: query.status as TrackerStatus } : {}),
    ...(query.category ? { category: query.category } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(to !== undefined ? { to } : {}),
    ...(limit !== undefined ? { limit } : {}),
    ...(query.cursor ? { cursor: query.cursor } : {}),
  };
}

export async function quarantineAction(reply: FastifyReply, action: () => Promise<unknown>): Promise<unknown> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof QuarantineError)
      return sendError(reply, error.code === "not_found" ? "not_found" : "bad_request", error.message);
    throw error;
  }
}

export function registerTrackerRoutes(app: FastifyInstance, options: TrackerRoutesOptions): void {
  const { auth, tracker, quarantine } = options;
  const read = auth.require(["admin", "helpdesk"]);
  const admin = auth.require(["admin"]);

  app.get<{ Querystring: SearchQuery }>("/api/messages", { preHandler: read }, async (request, reply) => {
    const filter = filterFrom(request.query);
    if (typeof filter === "string") return sendError(reply, "bad_request", filter);
    return tracker.search(filter);
  });

  app.get<{ Params: { id: string } }>("/api/messages/:id", { preHandler: read }, async (request, reply) => {
    const story = await tracker.story(request.params.id);
    return story ?? sendError(reply, "not_found", `no message ${request.params.id}`);
  });

  app.get<{ Params: { id: string } }>("/api/messages/:id/eml", { preHandler: read }, async (request, reply) =>
    quarantineAction(reply, async () => {
      const original = await quarantine.original(request.params.id);
      await tracker.audit({
        at: Date.now(),
        actor: principalOf(request).name,
        action: "download",
        messageId: request.params.id,
        detail: "original downloaded",
      });
      return reply
        .type("message/rfc822")
        .header("content-disposition", `attachment; filename="${request.params.id}.eml"`)
        .send(original.open());
    }),
  );

  app.post<{ Params: { id: string } }>("/api/messages/:id/release", { preHandler: read }, async (request, reply) =>
    quarantineAction(reply, async () => {
      await quarantine.release(request.params.id, principalOf(request).name);
      return { id: request.params.id, status: "Pending", released: true };
    }),
  );

  app.post<{ Params: { id: string } }>("/api/messages/:id/delete", { preHandler: admin }, async (request, reply) =>
    quarantineAction(reply, async () => {
      await quarantine.remove(request.params.id, principalOf(request).name);
      return { id: request.params.id, status: "Delete" };
    }),
  );

  app.post<{ Params: { id: string }; Body: { kind?: unknown } | undefined }>(
    "/api/messages/:id/propose",
    { preHandler: admin },
    async (request, reply) => {
      const kind = request.body?.kind;
      if (kind !== "allow" && kind !== "block")
        return sendError(reply, "bad_request", 'kind must be "allow" or "block"');
      return quarantineAction(reply, async () => ({
        proposal: await quarantine.proposeRule(request.params.id, kind, principalOf(request).name),
        file: "rule-proposals.csv in the data directory; add it to the stack's rules CSV to apply it",
      }));
    },
  );

  app.get("/api/audit", { preHandler: admin }, async () => ({ entries: await tracker.auditLog(200) }));
}
