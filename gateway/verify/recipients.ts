/**
 * Recipient verification: decides for each RCPT whether the gateway takes responsibility.
 *
 * Default deny, in this order:
 *  1. an address whose domain is not one of the customer's -> relay-denied (no open relay);
 *     the domain must match exactly (no subdomains), and source routes, percent hacks and
 *     bang paths never match a directory entry, so they end as unknown;
 *  2. `static`: the directory has the address (primary or alias) -> accept, else unknown;
 *     while a synced directory is expected but has not arrived yet (first start, Graph not
 *     reachable), an address the spreadsheet does not know is a tempfail (451), not a 550:
 *     the sender retries, nothing real bounces.
 *
 * Returns a typed result; inbound/replies.ts turns it into the SMTP answer.
 */
import type { Directory, DirectoryEntry } from "../directory/directory";

export type RecipientVerdict =
  | { readonly kind: "accept"; readonly address: string; readonly mailbox: DirectoryEntry }
  | { readonly kind: "relay-denied"; readonly address: string }
  | { readonly kind: "unknown"; readonly address: string }
  | { readonly kind: "tempfail"; readonly address: string; readonly reason: string };

export interface RecipientVerifier {
  verify(address: string): Promise<RecipientVerdict>;
}

export function domainOf(address: string): string {
  const at = address.lastIndexOf("@");
  return at < 0
    ? ""
    : address
        .slice(at + 1)
        .toLowerCase()
        .replace(/\.$/, "");
}

export function createStaticVerifier(options: {
  readonly domains: readonly string[];
  /** The directory in force; undefined while the first sync has not completed. */
  readonly directory: () => Directory | undefined;
  /** Consulted while `directory()` is undefined (the spreadsheet users). */
  readonly fallback?: Directory;
}): RecipientVerifier {
  const domains = new Set(options.domains.map((d) => d.toLowerCase()));
  return {
    async verify(address) {
      if (!domains.has(domainOf(address))) return { kind: "relay-denied", address };
      const directory = options.directory();
      const mailbox = (directory ?? options.fallback)?.lookup(address);
      if (mailbox) return { kind: "accept", address, mailbox };
      return directory
        ? { kind: "unknown", address }
        : { kind: "tempfail", address, reason: "the directory has not been synced from Entra ID yet" };
    },
  };
}
