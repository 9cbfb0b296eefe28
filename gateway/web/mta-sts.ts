/**
 * MTA-STS (RFC 8461): the policy text for a domain, and the route that serves it at
 * `https://mta-sts.<domain>/.well-known/mta-sts.txt` (HTTPS is terminated in front of the
 * gateway, by Cloudflare's proxy). Public by design: senders fetch it anonymously.
 * The DNS side (components/dns-records.ts) derives the `_mta-sts` id from the same text.
 */
import type { FastifyInstance } from "fastify";

/** One week, what the RFC 8461 examples use; long enough to protect, short enough to change. */
export const MTA_STS_MAX_AGE_S = 604_800;

export type MtaStsMode = "enforce" | "testing" | "none";

export function mtaStsPolicy(mode: MtaStsMode, mxHosts: readonly string[]): string {
  return [
    "version: STSv1",
    `mode: ${mode}`,
    ...mxHosts.map((h) => `mx: ${h}`),
    `max_age: ${MTA_STS_MAX_AGE_S}`,
    "",
  ].join("\r\n");
}

export interface MtaStsDomain {
  readonly name: string;
  readonly mtaSts: MtaStsMode;
  readonly mxHosts: readonly string[];
}

export function registerMtaSts(app: FastifyInstance, domains: readonly MtaStsDomain[]): void {
  const policies = new Map(
    domains.filter((d) => d.mtaSts !== "none").map((d) => [`mta-sts.${d.name}`, mtaStsPolicy(d.mtaSts, d.mxHosts)]),
  );
  app.get("/.well-known/mta-sts.txt", async (request, reply) => {
    const host = (request.headers.host ?? "").toLowerCase().replace(/:\d+$/, "").replace(/\.$/, "");
    const policy = policies.get(host);
    if (!policy) return reply.code(404).type("text/plain").send("no MTA-STS policy for this host\n");
    return reply.type("text/plain; charset=utf-8").header("cache-control", "max-age=300").send(policy);
  });
}
