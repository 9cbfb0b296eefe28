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
 * and redirects to a "regional" host (a second listener) like outlook.office365.com does.
 */
import { randomUUID } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { EntraTokenIssuer } from "./entra-token";

type ExoObject = Record<string, unknown> & { Guid: string; Name: string };
type Kind = "InboundConnector" | "OutboundConnector" | "TransportRule";

const COMMON = ["Confirm", "ErrorAction", "WarningAction"];
const PARAMETERS: Record<string, readonly string[]> = {
  "New-InboundConnector": [
    "Name",
    "ConnectorType",
    "SenderDomains",
    "SenderIPAddresses",
    "RequireTls",
    "RestrictDomainsToIPAddresses",
    "RestrictDomainsToCertificate",
    "TlsSenderCertificateName",
    "EFSkipIPs",
    "EFSkipLastIP",
    "EFUsers",
    "Enabled",
    "Comment",
    "CloudServicesMailEnabled",
    "TreatMessagesAsInternal",
    "AssociatedAcceptedDomains",
  ],
  "New-OutboundConnector": [
    "Name",
    "ConnectorType",
    "UseMXRecord",
    "SmartHosts",
    "TlsSettings",
    "TlsDomain",
    "RecipientDomains",
    "IsTransportRuleScoped",
    "RouteAllMessagesViaOnPremises",
    "Enabled",
    "Comment",
    "CloudServicesMailEnabled",
    "AllAcceptedDomains",
  ],
  "New-TransportRule": [
    "Name",
    "Priority",
    "Comments",
    "Mode",
    "Enabled",
    "FromScope",
    "SentToScope",
    "RouteMessageOutboundConnector",
    "ExceptIfHeaderContainsMessageHeader",
    "ExceptIfHeaderContainsWords",
    "SetSCL",
    "SenderIpRanges",
    "RecipientDomainIs",
    "StopRuleProcessing",
  ],
};
PARAMETERS["Set-InboundConnector"] = ["Identity", ...(PARAMETERS["New-InboundConnector"] ?? [])];
PARAMETERS["Set-OutboundConnector"] = ["Identity", ...(PARAMETERS["New-OutboundConnector"] ?? [])];
PARAMETERS["Set-TransportRule"] = [
  "Identity",
  ...(PARAMETERS["New-TransportRule"] ?? []).filter((p) => p !== "Enabled"),
];
for (const kind of ["InboundConnector", "OutboundConnector", "TransportRule"]) {
  PARAMETERS[`Get-${kind}`] = ["Identity", "ResultSize"];
  PARAMETERS[`Remove-${kind}`] = ["Identity"];
}
PARAMETERS["Enable-TransportRule"] = ["Identity"];
PARAMETERS["Disable-TransportRule"] = ["Identity"];
const REQUIRED: Record<string, readonly string[]> = {
  "New-InboundConnector": ["Name", "SenderDomains"],
  "New-OutboundConnector": ["Name"],
  "New-TransportRule": ["Name"],
};

class CmdletError extends Error {
  constructor(
    readonly status: number,
    readonly exceptionType: string,
    message: string,
  ) {
    super(message);
  }
}

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
    const allowed = PARAMETERS[cmdlet];
    if (!allowed)
      throw new CmdletError(
        400,
        "System.Management.Automation.CommandNotFoundException",
        `The term '${cmdlet}' is not recognized as a name of a cmdlet.`,
      );
    for (const key of Object.keys(parameters)) {
      if (!allowed.includes(key) && !COMMON.includes(key)) {
        throw new CmdletError(
          400,
          "System.Management.Automation.ParameterBindingException",
          `A parameter cannot be found that matches parameter name '${key}'.`,
        );
      }
    }
    for (const key of REQUIRED[cmdlet] ?? []) {
      if (parameters[key] === undefined || parameters[key] === null) {
        throw new CmdletError(
          400,
          "System.Management.Automation.ParameterBindingException",
          `Cannot process command because of one or more missing mandatory parameters: ${key}.`,
        );
      }
    }
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
        this.validate(noun, parameters, undefined);
        if (list.some((o) => o.Name.toLowerCase() === String(parameters.Name).toLowerCase())) {
          throw new CmdletError(
            400,
            "Microsoft.Exchange.Management.Tasks.ConnectorAlreadyExistsException",
            `A ${noun} with the name '${String(parameters.Name)}' already exists.`,
          );
        }
        const object = this.create(noun, parameters);
        list.splice(noun === "TransportRule" ? Number(object.Priority) : list.length, 0, object);
        this.renumber(noun);
        if (this.replicationLagReads > 0) this.hiddenReads.set(object.Guid, this.replicationLagReads);
        return [object];
      }
      case "Set": {
        const object = find();
        this.validate(noun, parameters, object);
        const { Identity: _identity, ...changes } = parameters;
        Object.assign(object, this.stored(noun, changes));
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

  private validate(noun: Kind, parameters: Record<string, unknown>, existing: ExoObject | undefined): void {
    const value = (key: string) => (key in parameters ? parameters[key] : existing?.[key]);
    const name = parameters.Name;
    if (name !== undefined && (typeof name !== "string" || name.trim() === ""))
      throw new CmdletError(400, "System.ArgumentException", "Name can't be empty.");
    if (noun === "TransportRule") {
      if (typeof name === "string" && name.length > 64)
        throw new CmdletError(
          400,
          "Microsoft.Exchange.Configuration.Tasks.TaskArgumentException",
          `The length of the property is too long. The maximum length is 64 and the length of the value provided is ${name.length}.`,
        );
      const priority = parameters.Priority;
      const max = this.objects.TransportRule.length - (existing ? 1 : 0);
      if (
        priority !== undefined &&
        (!Number.isInteger(priority) || (priority as number) < 0 || (priority as number) > max)
      ) {
        throw new CmdletError(
          400,
          "System.ArgumentOutOfRangeException",
          `The value of priority is out of range. Specify a value between 0 and ${max}.`,
        );
      }
      const connector = parameters.RouteMessageOutboundConnector;
      if (
        connector !== undefined &&
        !this.objects.OutboundConnector.some((c) => c.Name === connector || c.Guid === connector)
      ) {
        throw new CmdletError(
          400,
          "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
          `The outbound connector '${String(connector)}' couldn't be found.`,
        );
      }
      return;
    }
    const partner = String(value("ConnectorType") ?? "Partner").toLowerCase() === "partner";
    if (noun === "InboundConnector") {
      for (const flag of ["RequireTls", "RestrictDomainsToIPAddresses", "RestrictDomainsToCertificate"]) {
        if (value(flag) === true && !partner)
          throw new CmdletError(
            400,
            "Microsoft.Exchange.Management.Tasks.InboundConnectorInvalidRestrictDomainsException",
            `${flag} can only be set on a Partner connector.`,
          );
      }
      for (const ip of (parameters.SenderIPAddresses as string[] | undefined) ?? []) {
        const [address, prefix] = ip.split("/");
        if (
          !/^\d+\.\d+\.\d+\.\d+$/.test(address ?? "") ||
          (prefix !== undefined && (Number(prefix) < 24 || Number(prefix) > 32))
        ) {
          throw new CmdletError(
            400,
            "Microsoft.Exchange.Management.Tasks.InvalidSenderIPAddressException",
            `SenderIPAddresses '${ip}': only IPv4 addresses and CIDR ranges from /24 to /32 are allowed.`,
          );
        }
      }
      if (
        value("RestrictDomainsToIPAddresses") === true &&
        ((value("SenderIPAddresses") as unknown[] | undefined) ?? []).length === 0
      ) {
        throw new CmdletError(
          400,
          "Microsoft.Exchange.Management.Tasks.InboundConnectorMissingIPAddressesException",
          "SenderIPAddresses is required when RestrictDomainsToIPAddresses is true.",
        );
      }
    }
    if (
      noun === "OutboundConnector" &&
      value("UseMXRecord") === false &&
      ((value("SmartHosts") as unknown[] | undefined) ?? []).length === 0
    ) {
      throw new CmdletError(
        400,
        "Microsoft.Exchange.Management.Tasks.OutboundConnectorSmarthostRequiredException",
        "SmartHosts must be specified when UseMXRecord is false.",
      );
    }
  }

  private stored(noun: Kind, parameters: Record<string, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = { ...parameters };
    if (noun === "InboundConnector" && Array.isArray(parameters.SenderDomains))
      out.SenderDomains = parameters.SenderDomains.map((d) => `smtp:${String(d)};1`);
    delete out.Confirm;
    return out;
  }

  private create(noun: Kind, parameters: Record<string, unknown>): ExoObject {
    const base = {
      Guid: randomUUID(),
      Name: String(parameters.Name),
      Identity: String(parameters.Name),
      WhenCreated: new Date().toISOString(),
      WhenChanged: new Date().toISOString(),
    };
    if (noun === "InboundConnector") {
      return {
        ...base,
        Enabled: true,
        ConnectorType: "Partner",
        ConnectorSource: "Default",
        Comment: null,
        SenderIPAddresses: [],
        AssociatedAcceptedDomains: [],
        RequireTls: false,
        RestrictDomainsToIPAddresses: false,
        RestrictDomainsToCertificate: false,
        CloudServicesMailEnabled: false,
        TreatMessagesAsInternal: false,
        TlsSenderCertificateName: null,
        EFTestMode: false,
        EFSkipLastIP: false,
        EFSkipIPs: [],
        EFUsers: [],
        ...this.stored(noun, parameters),
      } as ExoObject;
    }
    if (noun === "OutboundConnector") {
      return {
        ...base,
        Enabled: true,
        ConnectorType: "Partner",
        ConnectorSource: "Default",
        Comment: null,
        UseMXRecord: true,
        SmartHosts: [],
        TlsSettings: null,
        TlsDomain: null,
        RecipientDomains: [],
        IsTransportRuleScoped: false,
        RouteAllMessagesViaOnPremises: false,
        CloudServicesMailEnabled: false,
        AllAcceptedDomains: false,
        ...this.stored(noun, parameters),
      } as ExoObject;
    }
    const { Enabled, ...rest } = parameters;
    return {
      ...base,
      State: Enabled === false ? "Disabled" : "Enabled",
      Mode: "Enforce",
      Priority: this.objects.TransportRule.length,
      Comments: null,
      FromScope: null,
      SentToScope: null,
      RouteMessageOutboundConnector: null,
      ExceptIfHeaderContainsMessageHeader: null,
      ExceptIfHeaderContainsWords: null,
      SetSCL: null,
      SenderIpRanges: null,
      RecipientDomainIs: null,
      StopRuleProcessing: false,
      ...this.stored(noun, rest),
    } as ExoObject;
  }
}
