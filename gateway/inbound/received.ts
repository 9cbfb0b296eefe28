/**
 * The Received header the gateway prepends to every accepted message (RFC 5321 §4.4), in
 * Postfix's shape. Client-supplied parts (HELO) are reduced to safe characters so a hostile
 * HELO cannot inject header lines.
 */
/**
 * Mail the gateway puts into the tenant carries `X-Moat-Relayed: <tenant id>`; the Exchange
 * outbound rule (components/exchange/plan.ts) exempts it, so it never loops back out.
 */
export const LOOP_GUARD_HEADER = "X-Moat-Relayed";

export interface ReceivedInfo {
  readonly helo: string;
  /** The client's forward-confirmed name (client-name.ts); without it, "unknown" as in Postfix. */
  readonly clientName?: string;
  readonly clientIp: string;
  readonly hostname: string;
  readonly protocol: "SMTP" | "ESMTP" | "ESMTPS";
  readonly id: string;
  /** Named only for a single recipient, as Postfix does, so lists of people do not leak. */
  readonly recipients: readonly string[];
  readonly date: Date;
}

function safe(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9.\-_:[\]]/g, "?").slice(0, 255);
  return cleaned === "" ? "unknown" : cleaned;
}

export function rfc5322Date(date: Date): string {
  return date.toUTCString().replace(/GMT$/, "+0000");
}

export function receivedHeader(info: ReceivedInfo): string {
  const forClause = info.recipients.length === 1 ? `\r\n\tfor <${info.recipients[0]}>` : "";
  return (
    `Received: from ${safe(info.helo)} (${info.clientName ? safe(info.clientName) : "unknown"} [${safe(info.clientIp)}])\r\n` +
    `\tby ${info.hostname} (Moat) with ${info.protocol} id ${info.id}${forClause};\r\n` +
    `\t${rfc5322Date(info.date)}\r\n`
  );
}
