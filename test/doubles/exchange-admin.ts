/**
 * A protocol-faithful double of the Exchange Online admin REST endpoint
 * (`POST /adminapi/beta/{tenantId}/InvokeCommand`) and of the Entra token endpoint
 * (`POST /{tenantId}/oauth2/v2.0/token`, client credentials with a secret or a certificate
 * assertion), over real HTTP on loopback.
 *
 * It keeps inbound/outbound connectors and transport rules, answers Get- in the live formats
 * (SenderDomains as `smtp:*;1`, transport rule State "Enabled"/"Disabled", `@odata.*`
 * annotations, paging by `@odata.nextLink`), and rejects what the real service rejects:
 * unknown parameters, a null or missing Identity, `Enabled` on Set-TransportRule, IPv6 or
 * wider-than-/24 SenderIPAddresses, RequireTls or Restrict... on non-Partner connectors, a missing
 * required parameter, SmartHosts missing with UseMXRecord false, Priority out of range,
 * names over 64 characters on rules, duplicate names, a wrong or missing token or anchor.
 *
 * On demand: throttles with 429 + Retry-After, fails with 503, answers 401 for a while
 * (permission propagation), hides new objects from Get- for a few reads (replication lag),
 * and redirects to a "regional" host (a second listener) like outlook.office365.com does. The
 * cmdlets themselves, their parameters, checks and defaults, are in exchange-cmdlets.ts.
 */
import { randomUUID } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { EntraTokenIssuer } from "./entra-token";
import { CmdletError, type ExoObject, type Kind, bindParameters, created, stored, validate } from "./exchange-cmdlets";

export interface ExchangeDoubleOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  /** PEM certificate whose key signs client assertions. */
  readonly certificatePem?: string;
  /** Objects per page of Get- (the real default is 1000 with Prefer: odata.maxpagesize). */
  readonly pageSize?: number;
}

export interface RecordedCall {
  readonly cmdlet: string;
  readonly parameters: Record<string, unknown>;
  readonly host: string;
}

export class ExchangeAdminDouble {
  readonly calls: RecordedCall[] = [];
  readonly objects: Record<Kind, ExoObject[]> = { InboundConnector: [], OutboundConnector: [], TransportRule: [] };
  /** The next N InvokeCommand requests answer 429 with this Retry-After (seconds). */
  throttle = { remaining: 0, retryAfterSeconds: 1 };
  /** The next N InvokeCommand requests answer 503. */
  unavailable = 0;
  /** The next N InvokeCommand requests answer 401 (role not yet propagated). */
  unauthorized = 0;
  /** Get- does not see an object for this many reads after New- (replication lag). */
  replicationLagReads = 0;
  /** When true the main host answers 302 to the regional host, as for another forest. */
  redirectToRegional = false;
  get tokensIssued(): number {
    return this.issuer.tokensIssued;
  }

  private main?: Server;
  private regional?: Server;
  private readonly issuer: EntraTokenIssuer;
  private readonly hiddenReads = new Map<string, number>();

  constructor(readonly options: ExchangeDoubleOptions) {
    this.issuer = new EntraTokenIssuer({
      tenantId: options.tenantId,
      scope: "https://outlook.office365.com/.default",
      clients: [
        {
          clientId: options.clientId,
          ...(options.clientSecret !== undefined ? { clientSecret: options.clientSecret } : {}),
          ...(options.certificatePem !== undefined ? { certificatePem: options.certificatePem } : {}),
          roles: ["Exchange.ManageAsApp"],
        },
      ],
    });
  }

  get url(): string {
    return `http://127.0.0.1:${(this.main?.address() as AddressInfo).port}`;
  }
  get regionalUrl(): string {
    return `http://127.0.0.1:${(this.regional?.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    this.main = createServer((req, res) => void this.handle(req, res, "main"));
    this.regional = createServer((req, res) => void this.handle(req, res, "regional"));
    await Promise.all(
      [this.main, this.regional].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()))),
    );
    return this;
  }

  async close(): Promise<void> {
    await Promise.all([this.main, this.regional].map((s) => new Promise<void>((r) => (s ? s.close(() => r()) : r()))));
  }

  /** Out-of-band change, as an admin in the Exchange admin center would make. */
  edit(kind: Kind, name: string, changes: Record<string, unknown>): void {
    const object = this.objects[kind].find((o) => o.Name === name);
    if (!object) throw new Error(`no ${kind} ${name}`);
    Object.assign(object, changes);
  }

  mutatingCalls(): RecordedCall[] {
    return this.calls.filter((c) => !c.cmdlet.startsWith("Get-"));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, host: "main" | "regional"): Promise<void> {
    const body = await new Promise<string>((resolve) => {
      let text = "";
      req.on("data", (d: Buffer) => (text += d.toString()));
      req.on("end", () => resolve(text));
    });
    const url = new URL(req.url ?? "/", "http://double");
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
      res.end(JSON.stringify(payload));
    };
    try {
      if (req.method === "POST" && url.pathname === this.issuer.path) {
        send(...this.issuer.issue(new URLSearchParams(body)));
        return;
      }
      const invoke = new RegExp(`^/adminapi/beta/([^/]+)/InvokeCommand$`).exec(url.pathname);
      if (req.method !== "POST" || !invoke) {
        send(404, { error: { code: "NotFound", message: `no route ${req.method} ${url.pathname}` } });
        return;
      }
      if (host === "main" && this.redirectToRegional) {
        res.writeHead(302, { location: `${this.regionalUrl}${req.url}` });
        res.end();
        return;
      }
      if (!this.issuer.check(req.headers.authorization)) {
        send(401, { error: { code: "InvalidToken", message: "The access token is missing or invalid." } });
        return;
      }
      if (this.unauthorized > 0) {
        this.unauthorized--;
        send(401, {
          error: { code: "Unauthorized", message: "The user or application does not have the Exchange role required." },
        });
        return;
      }
      if (this.throttle.remaining > 0) {
        this.throttle.remaining--;
        send(
          429,
          { error: { code: "TooManyRequests", message: "Too many requests." } },
          { "retry-after": String(this.throttle.retryAfterSeconds) },
        );
        return;
      }
      if (this.unavailable > 0) {
        this.unavailable--;
        send(503, { error: { code: "ServiceUnavailable", message: "The service is temporarily unavailable." } });
        return;
      }
      if (invoke[1] !== this.options.tenantId)
        throw new CmdletError(400, "System.ArgumentException", `Tenant ${invoke[1]} is not the tenant of the token.`);
      const anchor = req.headers["x-anchormailbox"];
      if (anchor !== `APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@${this.options.tenantId}`) {
        throw new CmdletError(
          400,
          "System.ArgumentException",
          "X-AnchorMailbox is missing or not the system mailbox of this tenant.",
        );
      }
      const input = (
        JSON.parse(body) as { CmdletInput?: { CmdletName?: string; Parameters?: Record<string, unknown> } }
      ).CmdletInput;
      if (!input?.CmdletName)
        throw new CmdletError(400, "System.ArgumentException", "CmdletInput.CmdletName is required.");
      const parameters = input.Parameters ?? {};
      this.calls.push({ cmdlet: input.CmdletName, parameters, host });
      const skip = Number(url.searchParams.get("$skip") ?? "0");
      const result = this.run(input.CmdletName, parameters);
      const pageSize = this.options.pageSize ?? 1000;
      const page = result
        .slice(skip, skip + pageSize)
        .map((o) => ({ "@odata.type": `#Exchange.GenericHashTable`, "@odata.id": `x/${o.Guid}`, ...o }));
      const next =
        skip + pageSize < result.length
          ? `${host === "main" ? this.url : this.regionalUrl}${url.pathname}?$skip=${skip + pageSize}`
          : undefined;
      send(200, {
        "@odata.context": `${this.url}/adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)`,
        ...(next ? { "@odata.nextLink": next } : {}),
        value: page,
      });
    } catch (error) {
      if (error instanceof CmdletError) {
        send(error.status, {
          error: {
            code: error.status === 404 ? "NotFound" : "BadRequest",
            message: `Error executing cmdlet :${error.message}`,
            details: [
              {
                code: "Context",
                target: "",
                message: `Ex${randomUUID().slice(0, 6)}|${error.exceptionType}|${error.message}`,
              },
            ],
          },
        });
      } else {
        send(500, { error: { code: "InternalServerError", message: (error as Error).message } });
      }
    }
  }

  private run(cmdlet: string, parameters: Record<string, unknown>): ExoObject[] {
    bindParameters(cmdlet, parameters);
    const [verb, noun] = cmdlet.split("-") as [string, Kind];
    const list = this.objects[noun];
    const find = (): ExoObject => {
      if (!("Identity" in parameters) || parameters.Identity === null || parameters.Identity === "") {
        throw new CmdletError(
          400,
          "System.Management.Automation.ParameterBindingValidationException",
          "Cannot validate argument on parameter 'Identity'. The argument is null or empty.",
        );
      }
      const identity = String(parameters.Identity);
      const found = list.find((o) => o.Guid === identity || o.Name.toLowerCase() === identity.toLowerCase());
      if (!found) {
        // The real service answers not-found with a 400 or a 404 depending on the cmdlet.
        throw new CmdletError(
          verb === "Get" ? 404 : 400,
          "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
          `The operation couldn't be performed because object '${identity}' couldn't be found on 'AM0PR01A001DC01.EURPRD01.PROD.OUTLOOK.COM'.`,
        );
      }
      return found;
    };
    switch (verb) {
      case "Get": {
        if (!("Identity" in parameters)) return list.filter((o) => !this.hidden(o.Guid));
        const found = find();
        if (this.hidden(found.Guid))
          throw new CmdletError(
            404,
            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            `The operation couldn't be performed because object '${String(parameters.Identity)}' couldn't be found.`,
          );
        return [found];
      }
      case "New": {
        validate(this.objects, noun, parameters, undefined);
        if (list.some((o) => o.Name.toLowerCase() === String(parameters.Name).toLowerCase())) {
          throw new CmdletError(
            400,
            "Microsoft.Exchange.Management.Tasks.ConnectorAlreadyExistsException",
            `A ${noun} with the name '${String(parameters.Name)}' already exists.`,
          );
        }
        const object = created(this.objects, noun, parameters);
        list.splice(noun === "TransportRule" ? Number(object.Priority) : list.length, 0, object);
        this.renumber(noun);
        if (this.replicationLagReads > 0) this.hiddenReads.set(object.Guid, this.replicationLagReads);
        return [object];
      }
      case "Set": {
        const object = find();
        validate(this.objects, noun, parameters, object);
        const { Identity: _identity, ...changes } = parameters;
        Object.assign(object, stored(noun, changes));
        if (noun === "TransportRule" && changes.Priority !== undefined) {
          list.splice(list.indexOf(object), 1);
          list.splice(Number(changes.Priority), 0, object);
          this.renumber(noun);
        }
        return [];
      }
      case "Enable":
      case "Disable":
        find().State = verb === "Enable" ? "Enabled" : "Disabled";
        return [];
      case "Remove": {
        const object = find();
        list.splice(list.indexOf(object), 1);
        this.renumber(noun);
        return [];
      }
      default:
        throw new CmdletError(400, "System.Management.Automation.CommandNotFoundException", `unknown verb ${verb}`);
    }
  }

  private hidden(guid: string): boolean {
    const left = this.hiddenReads.get(guid) ?? 0;
    if (left <= 0) return false;
    this.hiddenReads.set(guid, left - 1);
    return true;
  }

  private renumber(noun: Kind): void {
    if (noun === "TransportRule") this.objects.TransportRule.forEach((rule, index) => (rule.Priority = index));
  }
}
