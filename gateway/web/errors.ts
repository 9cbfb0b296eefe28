/**
 * The HTTP API's error catalogue: one closed set of stable codes, each with its status, so
 * clients can branch on `error.code` and the status never drifts from the meaning.
 */
import type { FastifyReply } from "fastify";

export const API_ERRORS = {
  unauthenticated: { status: 401, message: "a valid API token is required (Authorization: Bearer ...)" },
  forbidden: { status: 403, message: "not allowed for this role" },
  bad_request: { status: 400, message: "the request is malformed" },
  not_found: { status: 404, message: "no such thing" },
  not_configured: { status: 409, message: "this gateway is not configured for that" },
  conflict: { status: 409, message: "already under way" },
  upstream_failed: { status: 502, message: "an upstream service failed" },
} as const satisfies Record<string, { status: number; message: string }>;
export type ApiErrorCode = keyof typeof API_ERRORS;

export function sendError(reply: FastifyReply, code: ApiErrorCode, detail?: string): FastifyReply {
  const entry = API_ERRORS[code];
  if (code === "unauthenticated") reply.header("www-authenticate", 'Bearer realm="moat"');
  return reply.code(entry.status).send({ error: { code, message: detail ?? entry.message } });
}
