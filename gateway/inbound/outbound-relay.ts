/**
 * Who may relay through the gateway to the internet: only this tenant's outbound mail.
 * Exchange Online's IP ranges (and its TLS certificate) are shared by every Microsoft 365
 * tenant, so three things must hold: the client is in `outbound.relayFrom`, the envelope
 * sender is in one of the customer's domains, and the message carries this tenant's id in
 * `X-MS-Exchange-CrossTenant-Id` (set by Exchange Online). The first two are checked at
 * RCPT, the header once the message is in (before the 250).
 */
import { BlockList, isIP } from "node:net";
import { headerValues } from "../headers";
import { SmtpReply } from "./replies";

const TENANT_HEADER = "x-ms-exchange-crosstenant-id";

export interface OutboundRelayPolicy {
  mayRelay(clientIp: string, mailFrom: string): boolean;
  /** undefined when the message is this tenant's; else the refusal. */
  checkTenant(head: Buffer): SmtpReply | undefined;
}

function blockList(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const [address = "", prefix] = range.split("/");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(prefix), family);
  }
  return list;
}

export function createOutboundRelayPolicy(options: {
  readonly enabled: boolean;
  readonly relayFrom: readonly string[];
  readonly tenantId: string;
  readonly domains: readonly string[];
}): OutboundRelayPolicy {
  const ranges = blockList(options.relayFrom);
  const domains = new Set(options.domains.map((d) => d.toLowerCase()));
  const refuse = (why: string) => new SmtpReply(550, `5.7.1 Relay access denied: ${why}`);
  return {
    mayRelay(clientIp, mailFrom) {
      if (!options.enabled || mailFrom === "") return false;
      const family = isIP(clientIp) === 6 ? "ipv6" : "ipv4";
      const ip = clientIp.replace(/^::ffff:/, "");
      const senderDomain = mailFrom.slice(mailFrom.lastIndexOf("@") + 1).toLowerCase();
      return domains.has(senderDomain) && ranges.check(ip, ip === clientIp ? family : "ipv4");
    },
    checkTenant(head) {
      const values = headerValues(head, TENANT_HEADER);
      if (values === undefined) return refuse("the message header is too large to check");
      if (values.length !== 1)
        return refuse(
          values.length === 0
            ? "the message does not come from this tenant (no tenant id)"
            : "the message carries more than one tenant id",
        );
      return values[0]?.toLowerCase() === options.tenantId.toLowerCase()
        ? undefined
        : refuse("the message comes from another Microsoft 365 tenant");
    },
  };
}
