/**
 * Directory endpoints of the admin API:
 *   GET  /api/directory                 sync status and size (admin, helpdesk)
 *   GET  /api/directory/lookup?address= what an address resolves to, and why (admin, helpdesk):
 *                                       the first question when a sender reports a 550 5.1.1
 *   POST /api/directory/sync            {"full": true} = "clear cache & full sync" (admin);
 *                                       waits for the run and returns its outcome (502 if it failed)
 */
import type { FastifyInstance } from "fastify";
import type { Directory } from "../directory/directory";
import type { DirectorySync } from "../directory/sync";
import type { Auth } from "./auth";
import { sendError } from "./errors";

export interface DirectoryRoutesOptions {
  readonly auth: Auth;
  readonly sync: DirectorySync | undefined;
  /** The directory verification consults right now (undefined before the first sync). */
  readonly directory: () => Directory | undefined;
}

export function registerDirectoryRoutes(app: FastifyInstance, options: DirectoryRoutesOptions): void {
  const read = options.auth.require(["admin", "helpdesk"]);
  const admin = options.auth.require(["admin"]);

  app.get("/api/directory", { preHandler: read }, async () => {
    const directory = options.directory();
    return {
      source: options.sync ? "entra-id+spreadsheet" : "spreadsheet",
      addresses: directory?.size ?? 0,
      people: directory?.people().length ?? 0,
      sync: options.sync?.status() ?? null,
    };
  });

  app.get<{ Querystring: { address?: string } }>(
    "/api/directory/lookup",
    { preHandler: read },
    async (request, reply) => {
      const address = request.query.address?.trim();
      if (!address || !/^[^\s@]+@[^\s@]+$/.test(address))
        return sendError(reply, "bad_request", "address=local@domain is required");
      const directory = options.directory();
      if (!directory) return { address, found: false, reason: "the directory has not been synced yet" };
      const entry = directory.lookup(address);
      return entry
        ? { address, found: true, recipient: entry }
        : { address, found: false, reason: "not in the directory" };
    },
  );

  app.post<{ Body: { full?: unknown } | undefined }>(
    "/api/directory/sync",
    { preHandler: admin },
    async (request, reply) => {
      const sync = options.sync;
      if (!sync)
        return sendError(reply, "not_configured", "no Entra ID app is configured (graph): nothing to sync from");
      const full = request.body?.full;
      if (full !== undefined && typeof full !== "boolean")
        return sendError(reply, "bad_request", "full must be true or false");
      const outcome = await sync.run({ full: full === true });
      if (outcome.skippedBecauseRunningIn !== undefined) return sendError(reply, "conflict", outcome.error);
      return reply.code(outcome.ok ? 200 : 502).send(outcome);
    },
  );
}
