/**
 * The values the gatewayConfig document (config.ts) and the stack settings schema
 * (components/settings.ts) both validate: domain and DNS names, hosts, GUIDs, e-mail addresses,
 * IP addresses and CIDR ranges, `host:port`. Each refusal names the value and what it is not.
 *
 * Imports nothing else from the repository and never Pulumi, as config.ts.
 */
import { isIP } from "node:net";
import { z } from "zod";

const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function isDomainName(value: string): boolean {
  if (value.length > 253 || !value.includes(".")) return false;
  const labels = value.split(".");
  const tld = labels[labels.length - 1] ?? "";
  return labels.every((label) => DOMAIN_LABEL.test(label)) && /[a-z]/.test(tld);
}

export const zDomainName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine(isDomainName, { error: (issue) => `${JSON.stringify(issue.input)} is not a domain name` });

/** A DNS name as in TXT record targets: like a domain name, but labels may hold `_`. */
export function isDnsName(value: string): boolean {
  return isDomainName(value.replace(/(^|\.)_/g, "$1x").replace(/_/g, "-"));
}

export const zDnsName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine(isDnsName, { error: (issue) => `${JSON.stringify(issue.input)} is not a DNS name` });

/** A host to connect to: a domain name, a single-label name (lab setups), or an IP literal. */
export function isHostName(value: string): boolean {
  return isDomainName(value) || DOMAIN_LABEL.test(value) || isIP(value) !== 0;
}

export const zHostName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine(isHostName, {
    error: (issue) => `${JSON.stringify(issue.input)} is not a host name or IP address`,
  });

export const zGuid = z
  .string()
  .regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, {
    error: (issue) => `${JSON.stringify(issue.input)} is not a GUID`,
  })
  .transform((value) => value.toLowerCase());

/** An e-mail address with a domain part; local parts are kept as written, domains lower-cased. */
export const zEmailAddress = z
  .string()
  .transform((value) => value.trim())
  .refine(
    (value) => {
      const at = value.lastIndexOf("@");
      return at > 0 && !/\s/.test(value) && isDomainName(value.slice(at + 1).toLowerCase());
    },
    { error: (issue) => `${JSON.stringify(issue.input)} is not an e-mail address` },
  )
  .transform((value) => {
    const at = value.lastIndexOf("@");
    return `${value.slice(0, at)}@${value.slice(at + 1).toLowerCase()}`;
  });

export function isCidr(value: string, family?: 4 | 6): boolean {
  const [address, prefix, ...rest] = value.split("/");
  const version = isIP(address ?? "");
  if (version === 0 || rest.length > 0 || (family !== undefined && version !== family)) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (version === 4 ? 32 : 128);
}

export const zIpOrCidr = (family?: 4 | 6) =>
  z.string().refine((value) => isCidr(value.trim(), family), {
    error: (issue) => `${JSON.stringify(issue.input)} is not an IPv${family ?? "4/6"} address or CIDR range`,
  });

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

export const zHostPort = z.string().transform((value, ctx) => {
  const parsed = parseHostPort(value);
  if (!parsed) {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(value)} is not host:port` });
    return z.NEVER;
  }
  return parsed;
});

/** A DNS server: an IP address, optionally with a port (`127.0.0.1:5353`, `[::1]:53`). */
export const zHostPortOrIp = z
  .string()
  .refine(
    (value) =>
      isIP(value) !== 0 || (parseHostPort(value) !== undefined && isIP(parseHostPort(value)?.host ?? "") !== 0),
    {
      error: (issue) => `${JSON.stringify(issue.input)} is not a DNS server address (IP or IP:port)`,
    },
  );
