/**
 * Who may use the tracker API (/api/) and page (/): admin accounts that sign in with a
 * password (a session cookie), and bearer tokens for automation. The config holds only a
 * scrypt hash of each password and the SHA-256 of each token, so neither the stack nor the
 * gatewayConfig leaks a usable credential. Comparisons are constant-time.
 *
 * Roles: `admin` (everything) and `helpdesk` (read and release only); each route names the
 * roles it allows. Sessions live in memory (HttpOnly, SameSite=Strict cookie; 12 hours, ended
 * by logout or a restart). A request authenticated by its session cookie that changes
 * anything must carry the session's CSRF token (`x-csrf-token` header or `_csrf` form field);
 * a bearer request needs none (a browser never sends one on its own).
 *
 * Refusals come from the error catalogue (errors.ts): 401 (`WWW-Authenticate: Bearer`) without
 * valid credentials, 403 for the wrong role or a missing CSRF token.
 */
import { createHash, randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { GatewayConfig } from "../config";
import { sendError } from "./errors";

export type Role = "admin" | "helpdesk";
export type ApiToken = GatewayConfig["access"]["tokens"][number];
export type AdminAccount = GatewayConfig["access"]["admins"][number];

export interface Principal {
  readonly name: string;
  readonly role: Role;
  /** Set when the request came with a session cookie. */
  readonly session?: Session;
}

export interface Session {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly csrf: string;
  readonly expiresAt: number;
}

export const SESSION_COOKIE = "moat_session";
const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
const SCRYPT = { N: 16384, r: 8, p: 1, keyBytes: 32 };

export function newApiToken(): { token: string; sha256: string } {
  const token = `moat_${randomBytes(32).toString("base64url")}`;
  return { token, sha256: createHash("sha256").update(token).digest("hex") };
}

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(password, salt, SCRYPT.keyBytes, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

export function verifyPassword(password: string, stored: string): boolean {
  const [scheme, n, r, p, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = Buffer.from(hash, "base64");
  const actual = scryptSync(password, Buffer.from(salt, "base64"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 256 * 1024 * 1024,
  });
  return timingSafeEqual(actual, expected);
}

function cookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

export interface Auth {
  principal(request: FastifyRequest): Principal | undefined;
  /** A Fastify preHandler admitting only these roles; sets `request.principal`. */
  require(roles: readonly Role[]): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>;
  login(name: string, password: string): Session | undefined;
  logout(request: FastifyRequest): void;
  cookieFor(session: Session | undefined, secure: boolean): string;
}

export function createAuth(access: GatewayConfig["access"], now: () => number = Date.now): Auth {
  const sessions = new Map<string, Session>();
  // Verified against for unknown names, so a failed login costs one scrypt whether the name exists or not.
  const dummyHash = hashPassword(randomBytes(16).toString("hex"));
  const digestOf = (token: string) => createHash("sha256").update(token).digest();

  function fromBearer(authorization: string | undefined): Principal | undefined {
    const presented = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
    if (!presented) return undefined;
    const digest = digestOf(presented);
    let found: Principal | undefined;
    // Every token is compared, so timing says nothing about which one matched.
    for (const token of access.tokens)
      if (timingSafeEqual(digest, Buffer.from(token.sha256, "hex"))) found = { name: token.name, role: token.role };
    return found;
  }

  function fromSession(request: FastifyRequest): Principal | undefined {
    const id = cookie(request, SESSION_COOKIE);
    const session = id ? sessions.get(id) : undefined;
    if (!session) return undefined;
    if (session.expiresAt <= now()) {
      sessions.delete(session.id);
      return undefined;
    }
    return { name: session.name, role: session.role, session };
  }

  const auth: Auth = {
    principal: (request) => fromBearer(request.headers.authorization) ?? fromSession(request),
    require(roles) {
      return async (request, reply) => {
        const principal = auth.principal(request);
        if (!principal) return sendError(reply, "unauthenticated");
        if (!roles.includes(principal.role))
          return sendError(reply, "forbidden", `role ${principal.role} may not do this`);
        if (principal.session && !["GET", "HEAD"].includes(request.method)) {
          const body = request.body as Record<string, unknown> | undefined;
          const presented = String(request.headers["x-csrf-token"] ?? body?._csrf ?? "");
          const expected = principal.session.csrf;
          if (presented.length !== expected.length || !timingSafeEqual(Buffer.from(presented), Buffer.from(expected)))
            return sendError(reply, "forbidden", "missing or wrong CSRF token");
        }
        (request as FastifyRequest & { principal?: Principal }).principal = principal;
        return undefined;
      };
    },
    login(name, password) {
      const account = access.admins.find((a) => a.name === name);
      // Unknown names are verified against a dummy hash, so timing does not tell which names exist.
      const ok = verifyPassword(password, account?.passwordHash ?? dummyHash);
      if (!account || !ok) return undefined;
      const session: Session = {
        id: randomBytes(32).toString("base64url"),
        name: account.name,
        role: account.role,
        csrf: randomBytes(24).toString("base64url"),
        expiresAt: now() + SESSION_TTL_MS,
      };
      sessions.set(session.id, session);
      return session;
    },
    logout(request) {
      const id = cookie(request, SESSION_COOKIE);
      if (id) sessions.delete(id);
    },
    cookieFor(session, secure) {
      const attributes = `Path=/; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
      return session
        ? `${SESSION_COOKIE}=${session.id}; Max-Age=${SESSION_TTL_MS / 1000}; ${attributes}`
        : `${SESSION_COOKIE}=; Max-Age=0; ${attributes}`;
    },
  };
  return auth;
}

export function principalOf(request: FastifyRequest): Principal {
  return (request as FastifyRequest & { principal: Principal }).principal;
}
