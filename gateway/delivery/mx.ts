/**
 * Where mail for an internet domain goes (RFC 5321 §5.1): its MX hosts by preference, else
 * the domain itself (implicit MX), and nowhere for a null MX (RFC 7505). DNS servers come
 * from the config (`MOAT_DNS_SERVERS`), the system's otherwise.
 *
 * Returns a typed answer; a DNS failure that may pass (SERVFAIL, timeout) is `temporary`,
 * a domain that does not exist or takes no mail is `permanent`.
 */
import { Resolver } from "node:dns/promises";

export type MxAnswer =
  | { readonly kind: "hosts"; readonly hosts: readonly string[] }
  | { readonly kind: "permanent"; readonly reason: string }
  | { readonly kind: "temporary"; readonly reason: string };

export interface MxResolver {
  resolve(domain: string): Promise<MxAnswer>;
  /** IPv4 addresses of a host ([] when it has none or the lookup fails). */
  addresses(host: string): Promise<string[]>;
  /** TXT records of a name ([] when there are none). */
  txt(name: string): Promise<string[]>;
}

/** Hosts tried per domain at most (Postfix smtp_mx_address_limit is 5). */
export const MX_HOSTS_MAX = 5;
const DNS_TIMEOUT_MS = 5000;
const DNS_TRIES = 2;

export function createMxResolver(servers: readonly string[] = []): MxResolver {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (servers.length > 0) resolver.setServers([...servers]);
  const code = (error: unknown) => (error as NodeJS.ErrnoException).code ?? "";
  return {
    async resolve(domain) {
      try {
        const records = await resolver.resolveMx(domain);
        if (records.length === 1 && (records[0]?.exchange === "" || records[0]?.exchange === ".")) {
          return { kind: "permanent", reason: `${domain} accepts no mail (null MX, RFC 7505)` };
        }
        const hosts = [...records]
          .sort((a, b) => a.priority - b.priority)
          .map((r) => r.exchange.toLowerCase().replace(/\.$/, ""));
        return { kind: "hosts", hosts: [...new Set(hosts)].slice(0, MX_HOSTS_MAX) };
      } catch (error) {
        if (code(error) === "ENOTFOUND") return { kind: "permanent", reason: `${domain}: no such domain` };
        if (code(error) !== "ENODATA")
          return {
            kind: "temporary",
            reason: `MX lookup for ${domain} failed: ${code(error) || (error as Error).message}`,
          };
      }
      try {
        await resolver.resolve4(domain);
        return { kind: "hosts", hosts: [domain] }; // implicit MX
      } catch (error) {
        if (code(error) === "ENODATA" || code(error) === "ENOTFOUND")
          return { kind: "permanent", reason: `${domain} has no MX and no address` };
        return { kind: "temporary", reason: `address lookup for ${domain} failed: ${code(error)}` };
      }
    },
    async addresses(host) {
      try {
        return await resolver.resolve4(host);
      } catch {
        return [];
      }
    },
    async txt(name) {
      try {
        return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(""));
      } catch (error) {
        if (code(error) === "ENODATA" || code(error) === "ENOTFOUND") return [];
        throw error;
      }
    },
  };
}
