/**
 * Impersonation of the customer from outside (inbound only):
 *
 * - DISPLAY_NAME: the From display name is that of an internal person (users from the
 *   directory, never groups), but the address is not one of the customer's domains
 *   ("Anna Berg" <ceo.office@gmail.test>);
 * - LOOKALIKE_DOMAIN: the From or envelope domain is a lookalike of a customer domain
 *   (lookalike.ts: confusable characters, one or two typing slips).
 *
 * Names compare case- and space-insensitively, ignoring quotes; a name of one word is not
 * enough (too many real people share a first name).
 */
import { domainOf } from "../verify/recipients";
import { lookalikeOf } from "./lookalike";
import type { Filter, Finding } from "./types";

function normaliseName(name: string): string {
  return name.normalize("NFKC").replace(/["'`]/g, "").replace(/\s+/g, " ").trim().toLowerCase();
}

export function createImpersonationFilter(): Filter {
  let cachedFor: unknown;
  let internalNames = new Map<string, string>();
  return {
    name: "impersonation",
    async run(message) {
      if (message.direction !== "inbound") return { findings: [] };
      const findings: Finding[] = [];
      const fromDomain = domainOf(message.parsed.fromAddress);
      const internal = message.domains.has(fromDomain);
      if (!internal && message.directory) {
        if (cachedFor !== message.directory) {
          internalNames = new Map();
          for (const person of message.directory.people()) {
            const name = normaliseName(person.displayName);
            if (name.includes(" ")) internalNames.set(name, person.primary);
          }
          cachedFor = message.directory;
        }
        const shown = normaliseName(message.parsed.fromName);
        const person = internalNames.get(shown);
        if (person)
          findings.push({
            detector: "impersonation",
            category: "impersonation",
            symbol: "DISPLAY_NAME",
            detail: `From shows the name of internal user ${person} ("${message.parsed.fromName}") but comes from ${message.parsed.fromAddress}`,
          });
      }
      for (const [what, domain] of [
        ["From", fromDomain],
        ["envelope sender", domainOf(message.mailFrom)],
      ] as const) {
        const imitated = domain ? lookalikeOf(domain, message.domains) : undefined;
        if (imitated) {
          findings.push({
            detector: "impersonation",
            category: "impersonation",
            symbol: "LOOKALIKE_DOMAIN",
            detail: `${what} domain ${domain} is a lookalike of ${imitated}`,
          });
          break;
        }
      }
      return { findings };
    },
  };
}
