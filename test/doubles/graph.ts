/**
 * A protocol-faithful double of what directory sync uses of Microsoft Graph and Entra ID,
 * over real HTTPS on loopback (the certificate from test/setup/global.ts, trusted through
 * NODE_EXTRA_CA_CERTS). One listener plays both hosts: the authority
 * (`/{tenant}/v2.0/.well-known/openid-configuration`, `/{tenant}/oauth2/v2.0/token`) and Graph
 * (`/v1.0/users/delta`, `/v1.0/groups/delta`).
 *
 * Delta queries as documented: the first round returns every object (the current state),
 * paged by `@odata.nextLink` (opaque `$skiptoken`), the last page carries `@odata.deltaLink`
 * (opaque `$deltatoken`); a round from a delta link returns only objects changed since, with
 * every selected property, and deleted ones as `{id, "@removed": {reason}}`. The query of the
 * first request ($select) is carried by the tokens; a state request that repeats it is refused.
 *
 * Strict like the service: a token must be valid and carry a role that may read the
 * collection (403 Authorization_RequestDenied otherwise); `$select` names must exist on the
 * type; `$filter` on anything but `id` is refused; an expired delta token answers 410 Gone
 * (`syncStateNotFound`). On demand: 429/503 with Retry-After for the next N requests, and 403
 * for a while (consent revoked).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { type Server, createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { EntraTokenIssuer, type RegisteredClient } from "./entra-token";

type Kind = "users" | "groups";
export type GraphObject = Record<string, unknown> & { readonly id: string };

const PROPERTIES: Record<Kind, ReadonlySet<string>> = {
  users: new Set([
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "otherMails",
    "userPrincipalName",
    "proxyAddresses",
    "accountEnabled",
    "assignedLicenses",
    "userType",
    "jobTitle",
    "department",
    "onPremisesSyncEnabled",
    "createdDateTime",
  ]),
  groups: new Set([
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "groupTypes",
    "proxyAddresses",
    "visibility",
    "createdDateTime",
  ]),
};
const TYPE_NAME: Record<Kind, string> = { users: "microsoft.graph.user", groups: "microsoft.graph.group" };
/** Roles an application token needs to read each collection (any one of them). */
const READ_ROLES: Record<Kind, readonly string[]> = {
  users: ["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"],
  groups: ["GroupMember.Read.All", "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All"],
};
/** Graph's page size for directory delta when the client does not ask (odata.maxpagesize caps at 999). */
const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 999;

interface Stored {
  data: GraphObject;
  changedAt: number;
  removed?: "changed" | "deleted";
}
interface Round {
  readonly kind: Kind;
  readonly select: readonly string[] | undefined;
  /** Ids to return in this round, fixed at its first request. */
  readonly ids: readonly string[];
  readonly position: number;
  /** The version the next delta round starts from. */
  readonly startedAt: number;
}
interface DeltaState {
  readonly kind: Kind;
  readonly select: readonly string[] | undefined;
  readonly since: number;
}

export interface GraphRequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly status: number;
}

export class GraphDouble {
  readonly requests: GraphRequestRecord[] = [];
  /** The next N Graph requests answer this status with Retry-After (seconds). */
  throttle: { remaining: number; status: 429 | 503; retryAfterSeconds: number } = {
    remaining: 0,
    status: 429,
    retryAfterSeconds: 1,
  };
  /** The next N Graph requests answer 403 (admin consent revoked, permissions not propagated). */
  denied = 0;
  /** The token endpoint; exists once started (its scope is this listener's URL). */
  issuer!: EntraTokenIssuer;

  private server?: Server;
  private version = 0;
  private readonly objects: Record<Kind, Map<string, Stored>> = { users: new Map(), groups: new Map() };
  private readonly rounds = new Map<string, Round>();
  private readonly deltas = new Map<string, DeltaState>();

  constructor(
    readonly options: {
      readonly tenantId: string;
      readonly clients: readonly RegisteredClient[];
      readonly pageSize?: number;
    },
  ) {}

  /** Both the authority host and the Graph endpoint (https://127.0.0.1:port). */
  get url(): string {
    return `https://127.0.0.1:${(this.server?.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    const cert = process.env.MOAT_TEST_DOUBLES_CERT;
    const key = process.env.MOAT_TEST_DOUBLES_KEY;
    if (!cert || !key) throw new Error("the Graph double needs test/setup/global.ts (vitest globalSetup)");
    this.server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", () => resolve()));
    this.issuer = new EntraTokenIssuer({
      tenantId: this.options.tenantId,
      scope: `${this.url}/.default`,
      clients: this.options.clients,
    });
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  // --- the tenant, as an admin changes it -------------------------------------------------

  put(kind: Kind, object: GraphObject): void {
    for (const name of Object.keys(object))
      if (!PROPERTIES[kind].has(name)) throw new Error(`double: ${name} is not a ${TYPE_NAME[kind]} property`);
    this.objects[kind].set(object.id, { data: { ...object }, changedAt: ++this.version });
  }

  update(kind: Kind, id: string, changes: Record<string, unknown>): void {
    const stored = this.objects[kind].get(id);
    if (!stored || stored.removed) throw new Error(`double: no ${kind} ${id}`);
    this.put(kind, { ...stored.data, ...changes, id });
  }

  remove(kind: Kind, id: string, reason: "changed" | "deleted" = "changed"): void {
    const stored = this.objects[kind].get(id);
    if (!stored || stored.removed) throw new Error(`double: no ${kind} ${id}`);
    this.objects[kind].set(id, { data: { id }, changedAt: ++this.version, removed: reason });
  }

  /** Every delta token handed out so far is forgotten: using one answers 410 Gone. */
  expireDeltaTokens(): void {
    this.deltas.clear();
  }

  graphRequests(kind?: Kind): GraphRequestRecord[] {
    return this.requests.filter((r) => r.path.startsWith("/v1.0/") && (!kind || r.path.startsWith(`/v1.0/${kind}`)));
  }

  // --- HTTP ------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await new Promise<string>((resolve) => {
      let text = "";
      req.on("data", (d: Buffer) => (text += d.toString()));
      req.on("end", () => resolve(text));
    });
    const url = new URL(req.url ?? "/", this.url);
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      this.requests.push({
        method: req.method ?? "",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        status,
      });
      res.writeHead(status, {
        "content-type": "application/json; odata.metadata=minimal; charset=utf-8",
        "request-id": randomUUID(),
        ...headers,
      });
      res.end(JSON.stringify(payload));
    };
    const tenant = this.options.tenantId;
    if (req.method === "GET" && url.pathname === `/${tenant}/v2.0/.well-known/openid-configuration`) {
      send(200, this.openIdConfiguration());
      return;
    }
    if (req.method === "POST" && url.pathname === this.issuer.path) {
      send(...this.issuer.issue(new URLSearchParams(body)));
      return;
    }
    const route = /^\/v1\.0\/(users|groups)\/(?:delta|microsoft\.graph\.delta\(\))$/.exec(url.pathname);
    if (!route || req.method !== "GET") {
      send(...graphError(400, "BadRequest", `Resource not found for the segment '${url.pathname.split("/").pop()}'.`));
      return;
    }
    const token = this.issuer.check(req.headers.authorization);
    if (!token) {
      send(...graphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid."));
      return;
    }
    if (this.throttle.remaining > 0) {
      this.throttle.remaining--;
      const { status, retryAfterSeconds } = this.throttle;
      send(
        ...graphError(
          status,
          status === 429 ? "TooManyRequests" : "ServiceUnavailable",
          status === 429 ? "Too many requests." : "Service is temporarily unavailable.",
        ),
        { "retry-after": String(retryAfterSeconds) },
      );
      return;
    }
    const kind = route[1] as Kind;
    if (this.denied > 0 || !token.roles.some((r) => READ_ROLES[kind].includes(r))) {
      if (this.denied > 0) this.denied--;
      send(...graphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."));
      return;
    }
    const [status, payload] = this.delta(kind, url.searchParams, String(req.headers.prefer ?? ""));
    send(status, payload);
  }

  private openIdConfiguration(): Record<string, unknown> {
    const base = `${this.url}/${this.options.tenantId}`;
    return {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      jwks_uri: `${this.url}/${this.options.tenantId}/discovery/v2.0/keys`,
      response_modes_supported: ["query", "fragment", "form_post"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      issuer: `${base}/v2.0`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      tenant_region_scope: "EU",
      cloud_instance_name: "microsoftonline.com",
      cloud_graph_host_name: "graph.windows.net",
      msgraph_host: new URL(this.url).host,
    };
  }

  private delta(kind: Kind, query: URLSearchParams, prefer: string | undefined): [number, unknown] {
    const skip = query.get("$skiptoken");
    const deltaToken = query.get("$deltatoken");
    const stateful = skip !== null || deltaToken !== null;
    if (stateful && [...query.keys()].some((k) => k !== "$skiptoken" && k !== "$deltatoken"))
      return graphError(
        400,
        "Request_BadRequest",
        "Query parameters of the initial request are carried by the state token; do not repeat them.",
      );
    for (const name of query.keys()) {
      if (!stateful && !["$select", "$filter", "$deltatoken"].includes(name) && name.startsWith("$"))
        return graphError(400, "Request_BadRequest", `Unsupported query option '${name}' for delta.`);
    }
    const filter = query.get("$filter");
    if (filter !== null && !/^\s*id\s+eq\s+'[^']+'(\s+or\s+id\s+eq\s+'[^']+')*\s*$/.test(filter))
      return graphError(
        400,
        "Request_UnsupportedQuery",
        "Unsupported filter for delta: only filtering by id is supported.",
      );
    let round: Round;
    if (skip !== null) {
      const found = this.rounds.get(skip);
      if (!found || found.kind !== kind)
        return graphError(400, "Request_BadRequest", "The provided skip token is invalid or does not belong here.");
      round = found;
      this.rounds.delete(skip);
    } else {
      let select: string[] | undefined;
      let since = 0;
      if (deltaToken !== null) {
        const state = this.deltas.get(deltaToken);
        if (!state || state.kind !== kind)
          return graphError(410, "syncStateNotFound", "The sync state is no longer available; start a full sync.");
        select = state.select ? [...state.select] : undefined;
        since = state.since;
      } else {
        const raw = query.get("$select");
        if (raw !== null) {
          select = raw.split(",").map((s) => s.trim());
          const unknown = select.find((name) => !PROPERTIES[kind].has(name));
          if (unknown !== undefined)
            return graphError(
              400,
              "Request_BadRequest",
              `Parsing OData Select and Expand failed: Could not find a property named '${unknown}' on type '${TYPE_NAME[kind]}'.`,
            );
        }
      }
      const ids = [...this.objects[kind].entries()]
        .filter(([, stored]) => (since === 0 ? !stored.removed : stored.changedAt > since))
        .map(([id]) => id);
      round = { kind, select, ids, position: 0, startedAt: this.version };
    }
    const maxPageSize = Number(/odata\.maxpagesize=(\d+)/.exec(prefer ?? "")?.[1] ?? NaN);
    const pageSize = Math.min(
      MAX_PAGE_SIZE,
      Number.isFinite(maxPageSize) && maxPageSize > 0 ? maxPageSize : (this.options.pageSize ?? DEFAULT_PAGE_SIZE),
    );
    const pageIds = round.ids.slice(round.position, round.position + pageSize);
    const value = pageIds.map((id) => this.present(kind, id, round.select));
    const base = `${this.url}/v1.0/${kind}/delta`;
    const page: Record<string, unknown> = {
      "@odata.context": `${this.url}/v1.0/$metadata#${kind}${round.select ? `(${round.select.join(",")})` : ""}`,
    };
    if (round.position + pageSize < round.ids.length) {
      const next = opaqueToken();
      this.rounds.set(next, { ...round, position: round.position + pageSize });
      page["@odata.nextLink"] = `${base}?$skiptoken=${next}`;
    } else {
      const next = opaqueToken();
      this.deltas.set(next, { kind, select: round.select, since: round.startedAt });
      page["@odata.deltaLink"] = `${base}?$deltatoken=${next}`;
    }
    page.value = value;
    return [200, page];
  }

  private present(kind: Kind, id: string, select: readonly string[] | undefined): Record<string, unknown> {
    const stored = this.objects[kind].get(id) as Stored;
    if (stored.removed) return { "@odata.type": `#${TYPE_NAME[kind]}`, id, "@removed": { reason: stored.removed } };
    const names = select ?? [...PROPERTIES[kind]];
    const out: Record<string, unknown> = { "@odata.type": `#${TYPE_NAME[kind]}`, id };
    for (const name of names) if (name in stored.data) out[name] = stored.data[name];
    return out;
  }
}

function graphError(status: number, code: string, message: string): [number, unknown] {
  return [
    status,
    {
      error: {
        code,
        message,
        innerError: { date: new Date().toISOString(), "request-id": randomUUID(), "client-request-id": randomUUID() },
      },
    },
  ];
}

function opaqueToken(): string {
  return randomBytes(24).toString("base64url");
}

/** A tenant of `count` licensed users, u<N>@<domain>, with one alias each: for scale tests and the bench. */
export function seedUsers(graph: GraphDouble, count: number, domain: string, start = 0): void {
  for (let i = start; i < start + count; i++) {
    graph.put("users", {
      id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
      displayName: `User ${i}`,
      mail: `u${i}@${domain}`,
      userPrincipalName: `u${i}@${domain}`,
      proxyAddresses: [`SMTP:u${i}@${domain}`, `smtp:user.${i}@${domain}`, `SIP:u${i}@${domain}`],
      accountEnabled: true,
      assignedLicenses: [{ skuId: "05e9a617-0261-4cee-bb44-138d3ef5d965" }],
      userType: "Member",
    });
  }
}
