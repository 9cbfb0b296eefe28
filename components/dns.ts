/**
 * CustomerDns: the Cloudflare records of every customer domain (dns-records.ts decides what),
 * plus the gateway host's A record in the zone that holds it.
 *
 * Ordering: the MX of a cut-over domain depends on `cutoverDependsOn` (the gateway hosting and
 * the Exchange lock-down connector), so the MX never points at a gateway that is not there
 * yet. Zones come from `zoneId` or are looked up by name.
 */
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { type PlannedRecord, planDomainRecords } from "./dns-records";
import type { Settings } from "./settings";

export interface CustomerDnsArgs {
  readonly settings: Settings;
  readonly gatewayHost: string;
  /** The gateway's egress IPs (they enter SPF when outbound mail leaves through the gateway). */
  readonly egressIps: pulumi.Input<string[]>;
  /** The gateway's public inbound IPv4 address (its A record). */
  readonly inboundIp: pulumi.Input<string>;
  readonly cutoverDependsOn: pulumi.Input<pulumi.Resource>[];
}

/** Short TTLs where a change must take effect fast (cut-over and rollback). */
const MX_TTL_S = 300;
const A_TTL_S = 300;
const TXT_TTL_S = 3600;
/** Cloudflare requires "automatic" (1) for proxied records. */
const AUTOMATIC_TTL = 1;

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-");
}

export class CustomerDns extends pulumi.ComponentResource {
  readonly records: pulumi.Output<string[]>;

  constructor(name: string, args: CustomerDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("moat:dns:CustomerDns", name, {}, opts);
    const { settings, gatewayHost } = args;
    const created: cloudflare.DnsRecord[] = [];
    for (const domain of settings.domains) {
      const zoneId: pulumi.Input<string> =
        domain.zoneId ??
        cloudflare.getZoneOutput({ filter: { name: domain.name } }, { parent: this }).apply((zone) => zone.id);
      // Which records exist does not depend on the IPs; their content may (SPF).
      const records: PlannedRecord[] = [...planDomainRecords(settings, domain, gatewayHost, []).records];
      const contentOf = (key: string) =>
        pulumi
          .output(args.egressIps)
          .apply(
            (ips) =>
              planDomainRecords(settings, domain, gatewayHost, ips).records.find((r) => r.key === key)?.content ?? "",
          );
      if (gatewayHost === domain.name || gatewayHost.endsWith(`.${domain.name}`)) {
        records.push({ key: "gateway-a", type: "A", name: gatewayHost, content: "" });
      }
      for (const record of records) {
        const isCutoverMx = record.type === "MX" && domain.cutover;
        created.push(
          new cloudflare.DnsRecord(
            `${name}-${slug(domain.name)}-${record.key}`,
            {
              zoneId,
              name: record.name,
              type: record.type,
              content: record.type === "A" ? args.inboundIp : record.key === "spf" ? contentOf("spf") : record.content,
              ...(record.priority !== undefined ? { priority: record.priority } : {}),
              proxied: record.proxied ?? false,
              ttl: record.proxied
                ? AUTOMATIC_TTL
                : record.type === "MX"
                  ? MX_TTL_S
                  : record.type === "A"
                    ? A_TTL_S
                    : TXT_TTL_S,
              comment: `Managed by Moat (stack ${pulumi.getStack()})`,
            },
            { parent: this, dependsOn: isCutoverMx ? args.cutoverDependsOn : [] },
          ),
        );
      }
    }
    this.records = pulumi.all(created.map((r) => r.name));
    this.registerOutputs({ records: this.records });
  }
}
