/**
 * The stack config schema: every `moat:*` key of SPEC §2, validated before any resource is
 * registered. Pure: no Pulumi, no file access (components/stack-config.ts reads the values
 * and the files they point at).
 *
 * Fails with SettingsError listing every problem with its key path
 * (`moat:domains[0].name: "acme" is not a domain name`). Unknown `moat:` keys are errors.
 */
import { z } from "zod";
import { CLOUD_NAMES, type CloudName } from "./clouds";
import { zAdminAccount, zApiToken, zRetention, POLICY_ACTIONS, formatIssues } from "../gateway/config";
import { isCidr, parseHostPort } from "../gateway/names";
import { zDnsName, zDomainName, zEmailAddress, zGuid, zHostName, zIpOrCidr } from "../gateway/config-values";

const zAction = z.enum(POLICY_ACTIONS);

/** What an Exchange Online connector accepts: an IPv4 address or a /24 to /32 range. */
const zExchangeIp = z.string().refine((value) => isCidr(value, 4) && Number(value.split("/")[1] ?? 32) >= 24, {
  error: (i) =>
    `${JSON.stringify(i.input)} is not an IPv4 address or a /24 to /32 range (what Exchange Online connectors accept)`,
});

const zDomain = z.strictObject({
  name: zDomainName,
  /** Cloudflare zone id; looked up by name when absent. */
  zoneId: z
    .string()
    .regex(/^[0-9a-f]{32}$/, { error: (i) => `${JSON.stringify(i.input)} is not a Cloudflare zone id (32 hex digits)` })
    .optional(),
  /** MX points at the gateway only when true; false leaves/returns it to Exchange Online. */
  cutover: z.boolean().default(false),
  spf: z
    .strictObject({
      include: z.array(zDnsName).default([]),
      ip4: z.array(zIpOrCidr(4)).default([]),
      ip6: z.array(zIpOrCidr(6)).default([]),
    })
    .optional(),
  dmarc: z
    .string()
    .refine((v) => /^v=DMARC1\s*;/.test(v), { error: 'a DMARC record starts with "v=DMARC1;"' })
    .optional(),
  /** `testing` until the admin has watched TLS-RPT reports; then `enforce`. */
  mtaSts: z.enum(["enforce", "testing", "none"]).default("testing"),
  /** Where TLS-RPT reports go; default `mailto:tls-reports@<domain>`. */
  tlsRptRua: z
    .string()
    .regex(/^(mailto:[^\s,;!]+@[^\s,;!]+|https:\/\/[^\s,;!]+)$/, {
      error: (i) => `${JSON.stringify(i.input)} is not a TLS-RPT rua (mailto:address or https:// URL)`,
    })
    .optional(),
  /** The domain's Exchange Online MX host, when it is not `<domain-with-dashes>.mail.protection.outlook.com`. */
  exchangeMx: zHostName.optional(),
});

/** Largest message by default: Exchange Online's default receive limit is 36 MB. */
const DEFAULT_MAX_MESSAGE_MB = 36;

const zPolicySettings = z
  .strictObject({
    spam: zAction.default("quarantine"),
    infomail: zAction.default("deliver"),
    phishing: zAction.default("quarantine"),
    malware: zAction.default("quarantine"),
    banned: zAction.default("quarantine"),
    impersonation: zAction.default("quarantine"),
    bannedExtensions: z
      .array(
        z
          .string()
          .regex(/^\.?[a-z0-9]{1,16}$/i, { error: (i) => `${JSON.stringify(i.input)} is not a file extension` }),
      )
      .default(["exe", "js", "vbs", "scr", "iso", "bat", "cmd", "com", "pif", "jar", "msi", "hta", "lnk"])
      .transform((list) => [...new Set(list.map((e) => e.replace(/^\./, "").toLowerCase()))]),
    maxMessageMb: z.number().positive().max(150).default(DEFAULT_MAX_MESSAGE_MB),
  })
  .default({
    spam: "quarantine",
    infomail: "deliver",
    phishing: "quarantine",
    malware: "quarantine",
    banned: "quarantine",
    impersonation: "quarantine",
    bannedExtensions: ["exe", "js", "vbs", "scr", "iso", "bat", "cmd", "com", "pif", "jar", "msi", "hta", "lnk"],
    maxMessageMb: DEFAULT_MAX_MESSAGE_MB,
  });

const zRelativeFile = (what: string) =>
  z
    .string()
    .min(1)
    .refine((p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."), {
      error: `the ${what} file is a path relative to the project directory, inside it`,
    })
    .refine((p) => p.toLowerCase().endsWith(".csv"), { error: `the ${what} file must be a .csv file` });

const zSettingsObject = z.strictObject({
  tenantId: zGuid,
  domains: z.array(zDomain).min(1, { error: "at least one domain is required" }),
  smartHost: zHostName.optional(),
  /** The Microsoft cloud of the tenant (authority, Graph and Exchange hosts differ). */
  cloud: z.enum(CLOUD_NAMES as [CloudName, ...CloudName[]]).default("global"),
  verification: z.enum(["static", "dynamic"]).default("static"),
  gateway: z
    .strictObject({
      /** Where the gateway runs: declared by this stack on Azure, or run elsewhere by the MSP. */
      hosting: z.enum(["azure", "external"]).default("azure"),
      /** Azure region of the gateway. */
      location: z
        .string()
        .regex(/^[a-z0-9]+$/, {
          error: (i) => `${JSON.stringify(i.input)} is not an Azure region name (e.g. westeurope)`,
        })
        .default("westeurope"),
      /** The MX host name; default `mx.<first domain>`. */
      hostname: zDomainName.optional(),
      /** hosting azure: the gateway's container image (built from the repository's Dockerfile). */
      image: z
        .string()
        .regex(/^[a-z0-9][a-z0-9._\/-]*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$/, {
          error: (i) => `${JSON.stringify(i.input)} is not a container image reference`,
        })
        .optional(),
      rspamdImage: z.string().min(1).default("rspamd/rspamd:3.10"),
      clamavImage: z.string().min(1).default("clamav/clamav:1.4"),
      /**
       * hosting azure: the gateway container's vCPUs, 1 (the default) to 3, with 2 GiB of memory
       * each. rspamd and clamd beside it take 0.5 vCPU and 1 GiB each, and Container Apps'
       * Consumption profile gives a replica at most 4 vCPUs and 8 GiB; the gateway is one replica
       * (its SQLite stores have one writer), so this is how it grows. Whole vCPUs only: the
       * gateway counts whole CPUs, and from 2 its verdict runs in a thread of its own and its
       * event loop keeps a CPU apart (README "Where the verdict runs").
       */
      cpu: z
        .literal([1, 2, 3], {
          error: (i) =>
            `${JSON.stringify(i.input)} is not 1, 2 or 3 (whole vCPUs for the gateway container; with rspamd and clamd beside it a Container Apps replica holds at most 4)`,
        })
        .optional(),
      /**
       * hosting azure: the admin's statement that the subscription may send on TCP 25 (Azure
       * blocks it for most subscription types; Enterprise Agreement and MCA-E can be unblocked).
       */
      port25Unblocked: z.boolean().default(false),
      /** The gateway app's credential for Graph: a certificate (preferred) or a client secret. */
      credential: z.enum(["certificate", "secret"]).default("certificate"),
      /** Change (e.g. to a date) to rotate the gateway app's credential on the next `pulumi up`. */
      credentialRotation: z.string().max(64).optional(),
      /**
       * hosting azure: the name of the Key Vault certificate (in the stack's vault, PEM content
       * type) for the MX host; the gateway offers STARTTLS with it and picks up renewals.
       */
      tlsCertificate: z
        .string()
        .regex(/^[A-Za-z0-9-]{1,127}$/, {
          error: (i) => `${JSON.stringify(i.input)} is not a Key Vault certificate name`,
        })
        .optional(),
      /** hosting external: the gateway's stable public egress IPv4 addresses. */
      egressIps: z.array(zExchangeIp).default([]),
      /** hosting external: the gateway's public inbound IPv4 address (its A record). */
      inboundIp: zIpOrCidr(4)
        .refine((v) => !v.includes("/"), { error: "a single IPv4 address" })
        .optional(),
    })
    .default({
      hosting: "azure",
      location: "westeurope",
      rspamdImage: "rspamd/rspamd:3.10",
      clamavImage: "clamav/clamav:1.4",
      port25Unblocked: false,
      credential: "certificate",
      egressIps: [],
    }),
  exchange: z
    .strictObject({
      /** Declare the Exchange Online connectors and transport rules (false: leave them to the admin). */
      manage: z.boolean().default(true),
      /** How the inbound connector recognises the gateway: its egress IPs, or its TLS certificate name. */
      lockDown: z.enum(["ip", "certificate"]).default("ip"),
      certificateName: zDomainName.optional(),
      /** Enhanced Filtering (default) or, instead and never both, a transport rule setting SCL -1. */
      filtering: z.enum(["enhanced", "scl-bypass"]).default("enhanced"),
    })
    .default({ manage: true, lockDown: "ip", filtering: "enhanced" }),
  outbound: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Relay the tenant's outbound mail through this host (`host:port`) instead of to the recipients' MX hosts. */
      smartHost: z
        .string()
        .refine((v) => parseHostPort(v) !== undefined && parseHostPort(v)?.port !== 0, {
          error: (i) => `${JSON.stringify(i.input)} is not host:port`,
        })
        .optional(),
    })
    .default({ enabled: false }),
  relays: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]{0,47}$/, {
          error: (i) => `${JSON.stringify(i.input)} is not a relay name (letters, digits, space, _ . -; at most 48)`,
        }),
        ips: z.array(zExchangeIp).min(1),
      }),
    )
    .default([]),
  coexistence: z.array(z.strictObject({ domain: zDomainName, smartHosts: z.array(zHostName).min(1) })).default([]),
  policy: zPolicySettings,
  rules: zRelativeFile("rules").optional(),
  users: zRelativeFile("users").optional(),
  releaseRequests: z
    .strictObject({
      notify: z.array(zEmailAddress).default([]),
      linkBaseUrl: z.url({ protocol: /^https?$/ }).optional(),
      linkValidDays: z.number().int().min(1).max(90).default(14),
    })
    .default({ notify: [], linkValidDays: 14 }),
  /** How long the tracker keeps records and the quarantine keeps bodies. */
  retention: zRetention,
  /** Directory sync from Entra ID, every this many minutes (plus jitter). */
  directorySync: z
    .strictObject({ intervalMinutes: z.number().int().min(5).max(1440).default(60) })
    .default({ intervalMinutes: 60 }),
  /** Admin API access: tokens by SHA-256 (`npm run moat -- token new NAME --role admin|helpdesk`). */
  access: z
    .strictObject({ tokens: z.array(zApiToken).default([]), admins: z.array(zAdminAccount).default([]) })
    .default({ tokens: [], admins: [] }),
});

export const zSettings = zSettingsObject.superRefine((settings, ctx) => {
  const seen = new Map<string, number>();
  settings.domains.forEach((domain, index) => {
    const earlier = seen.get(domain.name);
    if (earlier !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["domains", index, "name"],
        message: `${domain.name} is already declared as domains[${earlier}]`,
      });
    }
    seen.set(domain.name, index);
  });
  const { exchange, gateway } = settings;
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
  settings.domains.forEach((domain, index) => {
    if (
      domain.cutover &&
      domain.mtaSts === "enforce" &&
      gateway.hosting === "azure" &&
      gateway.tlsCertificate === undefined
    ) {
      issue(
        ["domains", index, "mtaSts"],
        "enforce needs the gateway to offer STARTTLS with a valid certificate for its host: set moat:gateway.tlsCertificate (or use testing until it is)",
      );
    }
  });
  if (gateway.hosting === "azure") {
    if (gateway.egressIps.length > 0)
      issue(
        ["gateway", "egressIps"],
        "set only with hosting external; the Azure hosting creates the gateway's egress IP",
      );
    if (gateway.inboundIp !== undefined)
      issue(
        ["gateway", "inboundIp"],
        "set only with hosting external; the Azure hosting creates the gateway's inbound IP",
      );
    if (gateway.image === undefined)
      issue(
        ["gateway", "image"],
        "required with hosting azure: the gateway image built from the repository's Dockerfile (e.g. ghcr.io/msp/moat-gateway:1.0.0)",
      );
    if (!gateway.port25Unblocked) {
      issue(
        ["gateway", "port25Unblocked"],
        "Azure blocks outbound TCP 25 on most subscriptions, and the gateway delivers to Exchange Online on port 25; set it to true only for a subscription where port 25 is unblocked (Enterprise Agreement or MCA-E), or use hosting external",
      );
    }
  } else {
    if (gateway.egressIps.length === 0)
      issue(
        ["gateway", "egressIps"],
        "required with hosting external: Exchange Online must accept mail only from the gateway's egress IPs",
      );
    if (gateway.inboundIp === undefined)
      issue(["gateway", "inboundIp"], "required with hosting external (the gateway host's A record)");
    if (gateway.cpu !== undefined)
      issue(["gateway", "cpu"], "set only with hosting azure; an external gateway has the CPUs of the host it runs on");
  }
  if (exchange.lockDown === "certificate" && exchange.certificateName === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["exchange", "certificateName"],
      message:
        "required while moat:exchange.lockDown is certificate (the subject name of the gateway's TLS certificate)",
    });
  }
});

export type Settings = Readonly<z.output<typeof zSettings>>;
export type DomainSettings = Settings["domains"][number];

/** Keys whose values are objects, lists or booleans: Pulumi hands them over as JSON text. */
const STRUCTURED_KEYS = new Set([
  "domains",
  "gateway",
  "exchange",
  "outbound",
  "relays",
  "coexistence",
  "policy",
  "releaseRequests",
  "directorySync",
  "access",
  "retention",
]);
const KNOWN_KEYS = Object.keys(zSettingsObject.shape);

export class SettingsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid stack config:\n  ${problems.join("\n  ")}`);
    this.name = "SettingsError";
  }
}

/**
 * Parses the `moat:*` entries of a stack's config. `config` maps full keys (`moat:domains`)
 * to values as Pulumi gives them (strings, JSON text for structured values) or as YAML gives
 * them (already structured). Keys of other namespaces (providers) are ignored here.
 */
export function parseSettings(config: Readonly<Record<string, unknown>>): Settings {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  for (const [fullKey, raw] of Object.entries(config)) {
    if (!fullKey.startsWith("moat:")) continue;
    const key = fullKey.slice("moat:".length);
    if (!KNOWN_KEYS.includes(key)) {
      problems.push(`${fullKey}: unknown key (the moat: keys are ${KNOWN_KEYS.join(", ")})`);
      continue;
    }
    if (typeof raw === "object" && raw !== null && "secure" in raw) {
      problems.push(`${fullKey}: must not be a secret; it is not sensitive and the gateway needs it in clear`);
      continue;
    }
    values[key] = STRUCTURED_KEYS.has(key) && typeof raw === "string" ? parseJsonOrKeep(raw) : raw;
  }
  const result = zSettings.safeParse(values);
  if (!result.success) problems.push(...formatIssues("moat:", result.error.issues));
  if (problems.length > 0) throw new SettingsError(problems);
  return (result as { data: Settings }).data;
}

function parseJsonOrKeep(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * `acme.com` -> `acme-com.mail.protection.outlook.com`, the classic Exchange Online MX name.
 * Domains added since 2024 may get `<domain>.<random>.mx.microsoft` instead: set
 * `moat:smartHost` to the value the Microsoft 365 admin center shows.
 */
export function defaultSmartHost(firstDomain: string): string {
  return `${firstDomain.replace(/\./g, "-")}.mail.protection.outlook.com`;
}

export function gatewayHostname(settings: Settings): string {
  return settings.gateway.hostname ?? `mx.${settings.domains[0]?.name}`;
}
