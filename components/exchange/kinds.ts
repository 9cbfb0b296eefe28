/**
 * What differs between the three Exchange Online object kinds Moat manages: their declared
 * properties (cmdlet parameter names), the validation done before any call (so a bad stack
 * fails at preview with the property named, not halfway through an apply), and how Get-
 * output is normalised to compare with what is declared.
 *
 * Pure: no I/O. Normalisation makes equal what Exchange treats as equal: case, order of
 * list items, null vs empty, `smtp:*;1` vs `*`, State "Enabled" vs Enabled true.
 */
import { isIP } from "node:net";

export type ExchangeKind = "InboundConnector" | "OutboundConnector" | "TransportRule";
export type ExchangeProperties = Readonly<Record<string, unknown>>;

const CONNECTOR_COMMON = ["ConnectorType", "Enabled", "Comment", "CloudServicesMailEnabled"];
export const DECLARABLE: Record<ExchangeKind, readonly string[]> = {
  InboundConnector: [
    ...CONNECTOR_COMMON,
    "SenderDomains",
    "SenderIPAddresses",
    "RequireTls",
    "RestrictDomainsToIPAddresses",
    "RestrictDomainsToCertificate",
    "TlsSenderCertificateName",
    "EFSkipIPs",
    "EFSkipLastIP",
    "EFUsers",
    "TreatMessagesAsInternal",
    "AssociatedAcceptedDomains",
  ],
  OutboundConnector: [
    ...CONNECTOR_COMMON,
    "UseMXRecord",
    "SmartHosts",
    "TlsSettings",
    "TlsDomain",
    "RecipientDomains",
    "IsTransportRuleScoped",
    "RouteAllMessagesViaOnPremises",
    "AllAcceptedDomains",
  ],
  TransportRule: [
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

/** Exchange Online limits transport rule names to 64 characters. */
export const RULE_NAME_MAX_LENGTH = 64;
const CONNECTOR_NAME_MAX_LENGTH = 64;

export interface Problem {
  readonly property: string;
  readonly reason: string;
}

function inboundIpProblem(value: string): string | undefined {
  const [address = "", prefix, extra] = value.split("/");
  if (extra !== undefined || isIP(address) !== 4)
    return `${JSON.stringify(value)}: only IPv4 addresses or ranges are allowed`;
  if (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) >= 24 && Number(prefix) <= 32)) {
    return `${JSON.stringify(value)}: a range must be /24 to /32 (Exchange Online refuses wider ranges)`;
  }
  return undefined;
}

export function validate(kind: ExchangeKind, name: string, properties: ExchangeProperties): Problem[] {
  const problems: Problem[] = [];
  const limit = kind === "TransportRule" ? RULE_NAME_MAX_LENGTH : CONNECTOR_NAME_MAX_LENGTH;
  if (name.trim() === "" || name.length > limit)
    problems.push({ property: "name", reason: `must be 1 to ${limit} characters, got ${name.length}` });
  for (const key of Object.keys(properties)) {
    if (!DECLARABLE[kind].includes(key))
      problems.push({
        property: `properties.${key}`,
        reason: `not a ${kind} property Moat manages (${DECLARABLE[kind].join(", ")})`,
      });
  }
  const list = (key: string) => (Array.isArray(properties[key]) ? (properties[key] as unknown[]).map(String) : []);
  if (kind === "InboundConnector") {
    if (list("SenderDomains").length === 0)
      problems.push({ property: "properties.SenderDomains", reason: 'required (use ["*"] for every sender domain)' });
    for (const ip of list("SenderIPAddresses")) {
      const reason = inboundIpProblem(ip);
      if (reason) problems.push({ property: "properties.SenderIPAddresses", reason });
    }
    // Exchange matches enum values case-insensitively.
    const partner = String(properties.ConnectorType ?? "Partner").toLowerCase() === "partner";
    for (const flag of ["RequireTls", "RestrictDomainsToIPAddresses", "RestrictDomainsToCertificate"]) {
      if (properties[flag] === true && !partner)
        problems.push({
          property: `properties.${flag}`,
          reason: "only a Partner connector can require TLS or restrict by IP or certificate",
        });
    }
    if (properties.RestrictDomainsToIPAddresses === true && list("SenderIPAddresses").length === 0) {
      problems.push({
        property: "properties.SenderIPAddresses",
        reason: "required when RestrictDomainsToIPAddresses is true",
      });
    }
    if (properties.RestrictDomainsToCertificate === true && !properties.TlsSenderCertificateName) {
      problems.push({
        property: "properties.TlsSenderCertificateName",
        reason: "required when RestrictDomainsToCertificate is true",
      });
    }
  }
  if (kind === "OutboundConnector") {
    if (properties.UseMXRecord === false && list("SmartHosts").length === 0)
      problems.push({ property: "properties.SmartHosts", reason: "required when UseMXRecord is false" });
    const tls = properties.TlsSettings === undefined ? undefined : String(properties.TlsSettings).toLowerCase();
    if (tls !== undefined && !["encryptiononly", "certificatevalidation", "domainvalidation"].includes(tls)) {
      problems.push({
        property: "properties.TlsSettings",
        reason: "must be EncryptionOnly, CertificateValidation or DomainValidation",
      });
    }
    if (tls === "domainvalidation" && !properties.TlsDomain)
      problems.push({ property: "properties.TlsDomain", reason: "required when TlsSettings is DomainValidation" });
  }
  if (
    kind === "TransportRule" &&
    properties.Priority !== undefined &&
    !(Number.isInteger(properties.Priority) && (properties.Priority as number) >= 0)
  ) {
    problems.push({ property: "properties.Priority", reason: "must be a whole number from 0" });
  }
  return problems;
}

/** One comparable form: strings lower-cased and trimmed, lists sorted, empties null. */
export function normaliseValue(key: string, value: unknown): unknown {
  if (value === undefined || value === null || value === "") return null;
  if (Array.isArray(value)) {
    const items = value.map((item) => {
      const text = String(item).trim().toLowerCase();
      return key === "SenderDomains" ? text.replace(/^smtp:/, "").replace(/;\d+$/, "") : text;
    });
    return items.length === 0 ? null : [...new Set(items)].sort();
  }
  if (typeof value === "boolean") return value;
  return String(value).trim().toLowerCase();
}

/** The declared properties as Get- shows them now (only the keys that are declared). */
export function observedProperties(
  kind: ExchangeKind,
  object: Readonly<Record<string, unknown>>,
  declared: readonly string[],
): Record<string, unknown> {
  const observed: Record<string, unknown> = {};
  for (const key of declared) {
    if (kind === "TransportRule" && key === "Enabled") observed.Enabled = object.State !== "Disabled";
    else if (key === "SenderDomains" && Array.isArray(object.SenderDomains))
      observed.SenderDomains = object.SenderDomains.map((d) =>
        String(d)
          .replace(/^smtp:/i, "")
          .replace(/;\d+$/, ""),
      );
    else observed[key] = object[key] ?? null;
  }
  return observed;
}

/** Declared keys whose value differs from the other side after normalisation. */
export function changedProperties(declared: ExchangeProperties, current: ExchangeProperties): string[] {
  return Object.keys(declared).filter(
    (key) => JSON.stringify(normaliseValue(key, declared[key])) !== JSON.stringify(normaliseValue(key, current[key])),
  );
}
