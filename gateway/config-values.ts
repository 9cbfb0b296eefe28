/**
 * The values the gatewayConfig document (config.ts) and the stack settings schema
 * (components/settings.ts) both validate: domain and DNS names, hosts, GUIDs, e-mail addresses,
 * IP addresses and CIDR ranges, `host:port`. Each refusal names the value and what it is not.
 *
 * The plain checks under them are in names.ts (without zod), imported from there by whoever needs
 * one alone. Imports nothing else from the repository and never Pulumi, as config.ts.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { isCidr, isDnsName, isDomainName, isHostName, parseHostPort } from "./names";

export const zDomainName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine(isDomainName, { error: (issue) => `${JSON.stringify(issue.input)} is not a domain name` });

export const zDnsName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine(isDnsName, { error: (issue) => `${JSON.stringify(issue.input)} is not a DNS name` });

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

export const zIpOrCidr = (family?: 4 | 6) =>
  z.string().refine((value) => isCidr(value.trim(), family), {
    error: (issue) => `${JSON.stringify(issue.input)} is not an IPv${family ?? "4/6"} address or CIDR range`,
  });

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
  .refine((value) => isIP(value) !== 0 || isIP(parseHostPort(value)?.host ?? "") !== 0, {
    error: (issue) => `${JSON.stringify(issue.input)} is not a DNS server address (IP or IP:port)`,
  });
