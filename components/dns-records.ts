/**
 * The DNS records a customer domain needs (SPEC §1), computed without I/O: dns.ts turns them
 * into Cloudflare records, `check` validates them offline, and the gateway serves the same
 * MTA-STS policy text.
 *
 * - MX: the gateway when `cutover`, else the domain's Exchange Online host (rollback = flip).
 * - SPF: Exchange Online's include, the gateway's egress IPs when outbound mail leaves
 *   through it, and the domain's extras; at most 10 DNS-querying terms (RFC 7208 §4.6.4),
 *   counting the nested lookups of well-known includes.
 * - DMARC as declared; MTA-STS TXT whose id changes exactly when the policy text changes;
 *   TLS-RPT where MTA-STS is on.
 */
import { createHash } from "node:crypto";
import { mtaStsPolicy } from "../gateway/web/mta-sts";
import type { DomainSettings, Settings } from "./settings";
import { defaultSmartHost } from "./settings";

/** RFC 7208 §4.6.4: more than 10 terms that cause DNS queries is a permerror. */
export const SPF_MAX_LOOKUPS = 10;
export const EXCHANGE_SPF_INCLUDE = "spf.protection.outlook.com";
/** Lookups inside well-known includes (beyond the include itself), as published today. */
const KNOWN_NESTED_LOOKUPS: Readonly<Record<string, number>> = {
  "spf.protection.outlook.com": 0,
  "_spf.google.com": 3,
};
const MX_PRIORITY = 10;

export interface SpfRecord {
  readonly text: string;
  readonly lookups: number;
}

export function spfRecord(
  domain: DomainSettings,
  egressIps: readonly string[],
  outboundViaGateway: boolean,
): SpfRecord {
  const includes = [EXCHANGE_SPF_INCLUDE, ...(domain.spf?.include ?? []).filter((i) => i !== EXCHANGE_SPF_INCLUDE)];
  const ip4 = [...(outboundViaGateway ? egressIps : []), ...(domain.spf?.ip4 ?? [])];
  const terms = [
    ...ip4.map((ip) => `ip4:${ip}`),
    ...(domain.spf?.ip6 ?? []).map((ip) => `ip6:${ip}`),
    ...includes.map((i) => `include:${i}`),
  ];
  const lookups = includes.reduce((sum, include) => sum + 1 + (KNOWN_NESTED_LOOKUPS[include] ?? 0), 0);
  return { text: `v=spf1 ${[...new Set(terms)].join(" ")} -all`, lookups };
}

/** The MX hosts a domain's mail goes to: the gateway once cut over, else Exchange Online. */
export function mxHosts(domain: DomainSettings, gatewayHost: string): string[] {
  if (domain.cutover) return [gatewayHost];
  return [domain.exchangeMx ?? defaultSmartHost(domain.name)];
}

/** RFC 8461 id: 1-32 alphanumerics; derived from the policy so it changes exactly with it. */
export function mtaStsId(policy: string): string {
  return createHash("sha256").update(policy).digest("hex").slice(0, 32);
}

export interface PlannedRecord {
  /** Stable key within the domain, for resource names. */
  readonly key: string;
  readonly type: "MX" | "TXT" | "A" | "CNAME";
  /** Fully qualified name. */
  readonly name: string;
  readonly content: string;
  readonly priority?: number;
  readonly proxied?: boolean;
}

export interface DomainRecords {
  readonly domain: string;
  readonly records: readonly PlannedRecord[];
  readonly spf: SpfRecord;
  /** The MTA-STS policy the gateway serves at https://mta-sts.<domain>/.well-known/mta-sts.txt */
  readonly mtaStsPolicy?: string;
}

export function planDomainRecords(
  settings: Settings,
  domain: DomainSettings,
  gatewayHost: string,
  egressIps: readonly string[],
): DomainRecords {
  const records: PlannedRecord[] = [];
  const hosts = mxHosts(domain, gatewayHost);
  records.push({ key: "mx", type: "MX", name: domain.name, content: hosts[0] ?? "", priority: MX_PRIORITY });
  const spf = spfRecord(domain, egressIps, settings.outbound.enabled);
  records.push({ key: "spf", type: "TXT", name: domain.name, content: spf.text });
  if (domain.dmarc) records.push({ key: "dmarc", type: "TXT", name: `_dmarc.${domain.name}`, content: domain.dmarc });
  let policy: string | undefined;
  if (domain.mtaSts !== "none") {
    policy = mtaStsPolicy(domain.mtaSts, hosts);
    records.push({
      key: "mta-sts",
      type: "TXT",
      name: `_mta-sts.${domain.name}`,
      content: `v=STSv1; id=${mtaStsId(policy)}`,
    });
    // Cloudflare's proxy serves the policy over HTTPS with a valid certificate and fetches it
    // from the gateway's HTTP listener.
    records.push({
      key: "mta-sts-host",
      type: "CNAME",
      name: `mta-sts.${domain.name}`,
      content: gatewayHost,
      proxied: true,
    });
    records.push({
      key: "tls-rpt",
      type: "TXT",
      name: `_smtp._tls.${domain.name}`,
      content: `v=TLSRPTv1; rua=${domain.tlsRptRua ?? `mailto:tls-reports@${domain.name}`}`,
    });
  }
  return { domain: domain.name, records, spf, mtaStsPolicy: policy };
}

/** Every SPF problem of the stack, by key path, for validation before anything is created. */
export function spfProblems(settings: Settings, egressIps: readonly string[]): string[] {
  return settings.domains.flatMap((domain, index) => {
    const { lookups } = spfRecord(domain, egressIps, settings.outbound.enabled);
    return lookups > SPF_MAX_LOOKUPS
      ? [`moat:domains[${index}].spf: ${lookups} DNS lookups, the limit is ${SPF_MAX_LOOKUPS}`]
      : [];
  });
}
