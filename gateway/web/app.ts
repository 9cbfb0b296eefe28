/**
 * The HTTP app factory (Fastify), separate from listen() so tests use app.inject().
 * Today: `GET /healthz` (unauthenticated by design: load balancers and container probes call
 * it), `GET /metrics` (Prometheus; counts only, no message data) and the MTA-STS policy
 * (public by design), and the admin API under /api/ behind bearer tokens (auth.ts): today the
 * directory (status, lookup, sync). The tracker API and page will mount here the same way.
 */
import Fastify, { type FastifyInstance } from "fastify";
import { type DirectoryRoutesOptions, registerDirectoryRoutes } from "./directory-routes";
import { registerPage } from "./page";
import { registerReleaseRoutes } from "./release-routes";
import { type TrackerRoutesOptions, registerTrackerRoutes } from "./tracker-routes";
import { type MtaStsDomain, registerMtaSts } from "./mta-sts";

export interface HealthReport {
  readonly status: "ok" | "degraded";
  readonly customer: string;
  readonly checks: Readonly<Record<string, string>>;
}

export interface WebOptions {
  readonly health: () => Promise<HealthReport>;
  /** Domains whose MTA-STS policy this gateway serves. */
  readonly mtaSts?: readonly MtaStsDomain[];
  /** Prometheus exposition text for `GET /metrics`. */
  readonly metrics?: () => Promise<string>;
  /** The admin API's directory endpoints (auth.ts decides who may call them). */
  readonly directory?: DirectoryRoutesOptions;
  /** The tracker API and page. */
  readonly tracker?: TrackerRoutesOptions;
}

export function build(options: WebOptions): FastifyInstance {
  // Release links carry a signed token in the path: longer than Fastify's 100-character default.
  const app = Fastify({ logger: false, routerOptions: { maxParamLength: 1024 } });
  // HTML forms post urlencoded bodies.
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) =>
    done(null, Object.fromEntries(new URLSearchParams(String(body)))),
  );
  app.get("/healthz", async (_request, reply) => {
    const report = await options.health();
    return reply.code(report.status === "ok" ? 200 : 503).send(report);
  });
  const metrics = options.metrics;
  if (metrics) {
    app.get("/metrics", async (_request, reply) =>
      reply.type("text/plain; version=0.0.4; charset=utf-8").send(await metrics()),
    );
  }
  registerMtaSts(app, options.mtaSts ?? []);
  if (options.directory) registerDirectoryRoutes(app, options.directory);
  if (options.tracker) {
    registerTrackerRoutes(app, options.tracker);
    registerPage(app, options.tracker);
    const releaseRequests = options.tracker.releaseRequests;
    if (releaseRequests) registerReleaseRoutes(app, { ...options.tracker, releaseRequests });
  }
  return app;
}
