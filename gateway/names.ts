/**
 * Plain checks of domain and DNS names, hosts, IP addresses and CIDR ranges, and `host:port`,
 * which config-values.ts wraps in zod schemas. Apart from it, without zod, for the modules the
 * verdict's thread loads (the rules): a thread that loaded the schema library for two checks
 * would hold about 6 MB more (zod, measured in a worker thread; bench/RESULTS.md, the AW session).
 */
import { isIP } from "node:net";

const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isDomainName(value: string): boolean {
  if (value.length > 253 || !value.includes(".")) return false;
  const labels = value.split(".");
  const tld = labels[labels.length - 1] ?? "";
  return labels.every((label) => DOMAIN_LABEL.test(label)) && /[a-z]/.test(tld);
}

/** A DNS name as in TXT record targets: like a domain name, but labels may hold `_`. */
export function isDnsName(value: string): boolean {
  return isDomainName(value.replace(/(^|\.)_/g, "$1x").replace(/_/g, "-"));
}

/** A host to connect to: a domain name, a single-label name (lab setups), or an IP literal. */
export function isHostName(value: string): boolean {
  return isDomainName(value) || DOMAIN_LABEL.test(value) || isIP(value) !== 0;
}

export function isCidr(value: string, family?: 4 | 6): boolean {
  const [address, prefix, ...rest] = value.split("/");
  const version = isIP(address ?? "");
  if (version === 0 || rest.length > 0 || (family !== undefined && version !== family)) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

/** `host:port`, `[v6]:port`; port 0 means "any free port" (tests, local runs). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function parseHostPort(value: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9a-f:.]+)\]|([^:\s]+)):(\d{1,5})$/i.exec(value.trim());
  if (!match) return undefined;
  const host = (match[1] ?? match[2] ?? "").toLowerCase();
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  if (match[1] !== undefined && isIP(host) !== 6) return undefined;
  if (match[2] !== undefined && !(isHostName(host) && isIP(host) !== 6)) {
    return undefined;
  }
  return { host, port };
}
