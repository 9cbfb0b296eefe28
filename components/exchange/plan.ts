/**
 * The Exchange Online objects a customer's mail flow needs (SPEC §1), computed from the stack
 * settings and what the hosting provides. Pure: routing.ts turns each entry into a resource.
 *
 * 1. Lock-down Partner inbound connector: SenderDomains `*`, RequireTls, restricted to the
 *    gateway's egress IPs (or its certificate name).
 * 2. Enhanced Filtering on it (EFSkipIPs = egress IPs) by default, or instead — never both —
 *    a transport rule that sets SCL -1 for mail from the egress IPs.
 * 3. Outbound through the gateway (moat:outbound.enabled): a transport-rule-scoped Partner
 *    outbound connector to the gateway with DomainValidation TLS, and the rule that routes
 *    mail from inside to outside through it, except what carries the loop-guard header.
 * 4. Application relays (moat:relays): an OnPremises inbound connector per application.
 * 5. Coexistence (moat:coexistence): an outbound connector to the remote smart hosts and a
 *    rule forcing mail for that domain through it.
 *
 * Names start with "Moat" so admins recognise them; a name is an identity the provider
 * renames in place, but the Pulumi resource names (`key`) must stay stable.
 */
import { LOOP_GUARD_HEADER } from "../../gateway/inbound/received";
import type { Settings } from "../settings";
import type { ExchangeKind, ExchangeProperties } from "./kinds";
import { RULE_NAME_MAX_LENGTH } from "./kinds";

export interface PlannedObject {
  /** Stable Pulumi resource name suffix; never derived from something an admin renames. */
  readonly key: string;
  readonly kind: ExchangeKind;
  /** The object's Name in Exchange Online. */
  readonly name: string;
  readonly properties: ExchangeProperties;
  /** For transport rules: the key of the outbound connector the rule routes to. */
  readonly routesVia?: string;
}

export interface RoutingInputs {
  readonly settings: Settings;
  /**
   * Egress IPv4 addresses of the gateway: a list, or a Pulumi Output of one when the hosting
   * creates them (placed into the properties as they are; Pulumi resolves nested outputs).
   */
  readonly egressIps: unknown;
  /** The gateway's host name (MX, and smart host for outbound). */
  readonly gatewayHost: string;
  readonly customer: string;
}

export { LOOP_GUARD_HEADER };

export class RoutingPlanError extends Error {}

function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}

export function planExchangeRouting(inputs: RoutingInputs): PlannedObject[] {
  const { settings, egressIps, gatewayHost } = inputs;
  const { exchange } = settings;
  if (!exchange.manage) return [];
  const objects: PlannedObject[] = [];
  const ips = egressIps;

  const lockDown: Record<string, unknown> = {
    ConnectorType: "Partner",
    SenderDomains: ["*"],
    RequireTls: true,
    Comment: `Managed by Moat (stack ${inputs.customer}): accept internet mail only from the gateway.`,
  };
  if (exchange.lockDown === "ip") {
    Object.assign(lockDown, {
      SenderIPAddresses: ips,
      RestrictDomainsToIPAddresses: true,
      RestrictDomainsToCertificate: false,
    });
  } else {
    Object.assign(lockDown, {
      TlsSenderCertificateName: exchange.certificateName,
      RestrictDomainsToCertificate: true,
      RestrictDomainsToIPAddresses: false,
    });
  }
  if (exchange.filtering === "enhanced") Object.assign(lockDown, { EFSkipLastIP: false, EFSkipIPs: ips });
  objects.push({ key: "lockdown", kind: "InboundConnector", name: "Moat gateway lock-down", properties: lockDown });

  if (exchange.filtering === "scl-bypass") {
    objects.push({
      key: "scl-bypass",
      kind: "TransportRule",
      name: "Moat: bypass spam filtering for the gateway",
      properties: {
        SenderIpRanges: ips,
        SetSCL: -1,
        Comments: "Managed by Moat: the gateway has filtered this mail already.",
        Enabled: true,
      },
    });
  }

  if (settings.outbound.enabled) {
    objects.push({
      key: "outbound-connector",
      kind: "OutboundConnector",
      name: "Moat outbound via gateway",
      properties: {
        ConnectorType: "Partner",
        UseMXRecord: false,
        SmartHosts: [gatewayHost],
        TlsSettings: "DomainValidation",
        TlsDomain: gatewayHost,
        IsTransportRuleScoped: true,
        Comment: "Managed by Moat: outbound mail leaves through the gateway.",
      },
    });
    objects.push({
      key: "outbound-rule",
      kind: "TransportRule",
      name: "Moat: route outbound mail via the gateway",
      routesVia: "outbound-connector",
      properties: {
        FromScope: "InOrganization",
        SentToScope: "NotInOrganization",
        ExceptIfHeaderContainsMessageHeader: LOOP_GUARD_HEADER,
        ExceptIfHeaderContainsWords: [settings.tenantId],
        Comments: "Managed by Moat.",
        Enabled: true,
      },
    });
  }

  for (const relay of settings.relays) {
    objects.push({
      key: `relay-${slug(relay.name)}`,
      kind: "InboundConnector",
      name: `Moat relay: ${relay.name}`,
      properties: {
        ConnectorType: "OnPremises",
        SenderDomains: ["*"],
        SenderIPAddresses: [...relay.ips],
        Comment: `Managed by Moat: application relay ${relay.name}.`,
      },
    });
  }

  settings.coexistence.forEach((route, index) => {
    const ruleName = `Moat: route ${route.domain} to coexistence`;
    if (ruleName.length > RULE_NAME_MAX_LENGTH) {
      throw new RoutingPlanError(
        `moat:coexistence[${index}].domain: ${route.domain} makes the transport rule name longer than Exchange Online's ${RULE_NAME_MAX_LENGTH} characters`,
      );
    }
    const key = `coexistence-${slug(route.domain)}`;
    objects.push({
      key: `${key}-connector`,
      kind: "OutboundConnector",
      name: `Moat coexistence: ${route.domain}`,
      properties: {
        ConnectorType: "Partner",
        UseMXRecord: false,
        SmartHosts: [...route.smartHosts],
        TlsSettings: "CertificateValidation",
        IsTransportRuleScoped: true,
        Comment: `Managed by Moat: mail for ${route.domain} goes to its other mail system.`,
      },
    });
    objects.push({
      key: `${key}-rule`,
      kind: "TransportRule",
      name: ruleName,
      routesVia: `${key}-connector`,
      properties: { RecipientDomainIs: [route.domain], Comments: "Managed by Moat.", Enabled: true },
    });
  });
  return objects;
}
