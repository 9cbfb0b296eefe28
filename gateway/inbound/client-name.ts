/**
 * The connecting client's name, as Postfix's smtpd finds it (`smtpd_peername_lookup`): the
 * PTR record of its address, kept only when that name resolves back to the same address
 * (forward-confirmed reverse DNS). Otherwise the client is "unknown". The name goes into the
 * Received header (`from helo (name [ip])`) and to rspamd (its `Hostname`, which its
 * reverse-DNS rules read).
 *
 * It is looked up once per connection, before the greeting (smtp-server waits at most 1.5 s
 * for it and then greets an unknown client), through the gateway's DNS servers
 * (`MOAT_DNS_SERVERS`/`dns.servers`, else the system's), and each answer — a name or none —
 * is kept NAME_CACHE_TTL_MS (at most NAME_CACHE_MAX_ENTRIES addresses, the oldest out
 * first): the same servers connect over and over, and concurrent connections from one
 * address share one lookup.
 */
import { Resolver } from "node:dns/promises";
import { isIP } from "node:net";
import { createExpiringCache } from "../expiring-cache";

const DNS_TIMEOUT_MS = 1_000;
const DNS_TRIES = 1;
/** Names checked of a PTR answer with several. */
const MAX_PTR_NAMES = 3;
const NAME_CACHE_TTL_MS = 60_000;
const NAME_CACHE_MAX_ENTRIES = 10_000;

export interface ClientNames {
  /** The forward-confirmed name of `ip`, or undefined (unknown). Never rejects. */
  nameOf(ip: string): Promise<string | undefined>;
  /** smtp-server's `resolver` option: its connection takes the first name given, none for unknown. */
  reverse(ip: string, callback: (error: Error | null, hostnames: string[]) => void): void;
}

/** The full 32 hex digits of an IPv6 address ("2001:db8::1" -> "20010db8000...0001"). */
function ipv6Digits(ip: string): string {
  const [head = "", tail] = ip.toLowerCase().split("::");
  const groups = (part: string) => (part ? part.split(":") : []);
  const missing = 8 - groups(head).length - groups(tail ?? "").length;
  const all = [...groups(head), ...(tail === undefined ? [] : Array<string>(missing).fill("0")), ...groups(tail ?? "")];
  return all.map((g) => g.padStart(4, "0")).join("");
}

/** The PTR name of an address: 1.0.0.127.in-addr.arpa, or the ip6.arpa nibbles. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split(".").reverse().join(".")}.in-addr.arpa`;
  return `${[...ipv6Digits(ip)].reverse().join(".")}.ip6.arpa`;
}

function sameAddress(a: string, b: string): boolean {
  return isIP(a) === 6 ? ipv6Digits(a) === ipv6Digits(b) : a === b;
}

// The PTR is asked of the DNS as a PTR query (not dns.reverse, which reads the hosts file
// first), so the name is what the DNS says, as for the forward lookup.
async function confirmedName(lookups: Resolver, address: string): Promise<string | undefined> {
  const ip = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, ""); // an IPv4 client on an IPv6 socket
  const family = isIP(ip);
  if (family === 0 || ip.includes("%")) return undefined; // no zone-scoped (link-local) addresses
  const names = (await lookups.resolvePtr(reverseName(ip)).catch(() => [] as string[])).slice(0, MAX_PTR_NAMES);
  for (const name of names) {
    const addresses = await (family === 4 ? lookups.resolve4(name) : lookups.resolve6(name)).catch(
      () => [] as string[],
    );
    if (addresses.some((address) => sameAddress(address, ip))) return name.replace(/\.$/, "");
  }
  return undefined;
}

export function createClientNames(servers: readonly string[], now: () => number = Date.now): ClientNames {
  const lookups = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (servers.length > 0) lookups.setServers([...servers]);
  const cache = createExpiringCache<Promise<string | undefined>>(NAME_CACHE_TTL_MS, NAME_CACHE_MAX_ENTRIES, now);
  const nameOf = (ip: string) => cache.get(ip, () => confirmedName(lookups, ip));
  return {
    nameOf,
    reverse(ip, callback) {
      void nameOf(ip).then((name) => callback(null, name ? [name] : []));
    },
  };
}

/** smtp-server's session.clientHostname is `[ip]` when the client has no (confirmed) name. */
export function knownClientName(clientHostname: string | undefined): string | undefined {
  return clientHostname && !clientHostname.startsWith("[") ? clientHostname : undefined;
}
