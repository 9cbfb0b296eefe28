/**
 * The cmdlets the Exchange Online admin double (exchange-admin.ts) answers, bound and checked as
 * the real service does: the parameters each takes and needs, what it rejects (with the exception
 * type the service names), what a new connector or transport rule holds by default, and how the
 * service stores what it is given (SenderDomains as `smtp:*;1`, a rule's State).
 */
import { randomUUID } from "node:crypto";

export type ExoObject = Record<string, unknown> & { Guid: string; Name: string };
export type Kind = "InboundConnector" | "OutboundConnector" | "TransportRule";
export type Store = Readonly<Record<Kind, ExoObject[]>>;

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

export class CmdletError extends Error {
  constructor(
    readonly status: number,
    readonly exceptionType: string,
    message: string,
  ) {
    super(message);
  }
}

/** Parameter binding: the cmdlet exists, it takes every parameter given, its mandatory ones are there. */
export function bindParameters(cmdlet: string, parameters: Record<string, unknown>): void {
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
}

export function validate(
  objects: Store,
  noun: Kind,
  parameters: Record<string, unknown>,
  existing: ExoObject | undefined,
): void {
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
    const max = objects.TransportRule.length - (existing ? 1 : 0);
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
      !objects.OutboundConnector.some((c) => c.Name === connector || c.Guid === connector)
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

export function stored(noun: Kind, parameters: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...parameters };
  if (noun === "InboundConnector" && Array.isArray(parameters.SenderDomains))
    out.SenderDomains = parameters.SenderDomains.map((d) => `smtp:${String(d)};1`);
  delete out.Confirm;
  return out;
}

export function created(objects: Store, noun: Kind, parameters: Record<string, unknown>): ExoObject {
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
      ...stored(noun, parameters),
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
      ...stored(noun, parameters),
    } as ExoObject;
  }
  const { Enabled, ...rest } = parameters;
  return {
    ...base,
    State: Enabled === false ? "Disabled" : "Enabled",
    Mode: "Enforce",
    Priority: objects.TransportRule.length,
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
    ...stored(noun, rest),
  } as ExoObject;
}
