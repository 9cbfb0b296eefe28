/**
 * Authentication of the admin API (/api/): bearer tokens for automation. A token is
 * `moat_` + 32 random bytes (base64url); the config holds only its SHA-256 with a name and a
 * role, so neither the stack nor the gatewayConfig can leak a usable token. Comparison is
 * constant-time. Roles: `admin` (everything) and `helpdesk` (read, and release once the
 * quarantine exists); a route names the roles it allows.
 *
 * Refusals come from the error catalogue (errors.ts): 401 with `WWW-Authenticate: Bearer` when
 * no valid token was presented, 403 when the token's role may not do this.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { GatewayConfig } from "../config";
import { sendError } from "./errors";

export type Role = "admin" | "helpdesk";
export type ApiToken = GatewayConfig["access"]["tokens"][number];

export interface Principal {
  readonly name: string;
  readonly role: Role;
}

export function newApiToken(): { token: string; sha256: string } {
  const token = `moat_${randomBytes(32).toString("base64url")}`;
  return { token, sha256: sha256Hex(token) };
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

export function authenticate(tokens: readonly ApiToken[], authorization: string | undefined): Principal | undefined {
  const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
  if (!presented) return undefined;
  const digest = Buffer.from(sha256Hex(presented), "hex");
  let found: Principal | undefined;
  for (const token of tokens) {
    // Every configured token is compared, so timing says nothing about which one matched.
    if (timingSafeEqual(digest, Buffer.from(token.sha256, "hex"))) found = { name: token.name, role: token.role };
  }
  return found;
}

/** A Fastify preHandler that admits only the given roles and sets `request.principal`. */
export function requireRole(tokens: readonly ApiToken[], roles: readonly Role[]) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = authenticate(tokens, request.headers.authorization);
    if (!principal) return sendError(reply, "unauthenticated");
    if (!roles.includes(principal.role)) return sendError(reply, "forbidden", `role ${principal.role} may not do this`);
    (request as FastifyRequest & { principal?: Principal }).principal = principal;
    return undefined;
  };
}
