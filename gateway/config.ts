/**
 * The gatewayConfig document: THE contract between the Pulumi program (which builds it from
 * stack config and resource outputs and exports it as the stack output `gatewayConfig`) and
 * the gateway runtime (which parses exactly this schema at start-up).
 *
 * Imports nothing else from the repository but its value checks (config-values.ts, shared with
 * the stack settings schema) and never Pulumi, so the runtime image and the program share it
 * without dragging each other in.
 *
 * Fails with GatewayConfigError whose message lists every problem with its key path
 * (`gatewayConfig.delivery.smartHost.port: ...`). Unknown keys are errors, never ignored:
 * a typo in a policy key must not silently fall back to a default.
 */
import { z } from "zod";
import { zDomainName, zEmailAddress, zGuid, zHostName, zHostPort, zHostPortOrIp, zIpOrCidr } from "./config-values";

/** Bumped on any change an older gateway could misread; the parser refuses other versions. */
export const GATEWAY_CONFIG_VERSION = 1;

export const POLICY_ACTIONS = ["deliver", "quarantine", "delete", "reject"] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];
export const VERDICT_CATEGORIES = ["spam", "infomail", "phishing", "malware", "banned", "impersonation"] as const;
export type VerdictCategory = (typeof VERDICT_CATEGORIES)[number];

const zAction = z.enum(POLICY_ACTIONS);

// ---------------------------------------------------------------------------------------------
// The document.

const zStaticUser = z.strictObject({
  address: zEmailAddress,
  displayName: z.string().default(""),
  aliases: z.array(zEmailAddress).default([]),
});
export type StaticUser = z.infer<typeof zStaticUser>;

export const zPolicy = z.strictObject({
  spam: zAction,
  infomail: zAction,
  phishing: zAction,
  malware: zAction,
  banned: zAction,
  impersonation: zAction,
  bannedExtensions: z.array(
    z
      .string()
      .regex(/^[a-z0-9]{1,16}$/i)
      .transform((e) => e.toLowerCase()),
  ),
  /** Largest message accepted, in bytes (SIZE in EHLO, 552 beyond it). */
  maxMessageBytes: z.number().int().positive(),
});
export type Policy = z.infer<typeof zPolicy>;

const zRetry = z.strictObject({
  /** First retry after a temporary failure; doubles each time up to maxBackoffMs. */
  minBackoffMs: z.number().int().positive(),
  maxBackoffMs: z.number().int().positive(),
  /** A message still undeliverable this long after arrival is given up (Postfix: 5 days). */
  maxQueueLifetimeMs: z.number().int().positive(),
});

/** An API token for automation: only its SHA-256 is configured (`moat token new` makes one). */
export const zApiToken = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$/, {
    error: (i) => `${JSON.stringify(i.input)} is not a token name (letters, digits, _ . -; at most 48)`,
  }),
  role: z.enum(["admin", "helpdesk"]),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, { error: "must be the hex SHA-256 of the token (64 hex digits)" }),
});

/** How long the tracker keeps records and the quarantine keeps bodies (purged daily). */
export const zRetention = z
  .strictObject({
    trackerDays: z.number().int().min(1).max(3650).default(90),
    quarantineDays: z.number().int().min(1).max(3650).default(30),
  })
  .default({ trackerDays: 90, quarantineDays: 30 });

/** One allow/block/custom rule, as parsed from a rules CSV (gateway/rules/rules.ts). */
export const zRule = z.strictObject({
  kind: z.enum(["allow", "block", "custom"]),
  sender: z.string().min(1).optional(),
  ip: zIpOrCidr().optional(),
  action: z.enum(["reject", "delete"]).optional(),
  comment: z.string().optional(),
  scope: z.enum(["global", "customer"]),
  file: z.string().min(1),
  line: z.number().int().positive(),
});

/** A person who signs in to the tracker page; only a scrypt hash of the password (`moat password`). */
export const zAdminAccount = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, {
    error: (i) => `${JSON.stringify(i.input)} is not an account name (letters, digits, _ . @ -; at most 64)`,
  }),
  role: z.enum(["admin", "helpdesk"]),
  passwordHash: z.string().regex(/^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/, {
    error: "must be a hash made by `npm run moat -- password` (scrypt$N$r$p$salt$hash)",
  }),
});

/** A switch that may also follow the machine: true, false or "auto" (the default). */
const zBooleanOrAuto = z
  .union([z.boolean(), z.literal("auto")], {
    error: (issue) => `${JSON.stringify(issue.input)} is not true, false or "auto"`,
  })
  .default("auto");

const zBayes = z.strictObject({
  enabled: z.boolean().default(true),
  /** It stays out of the verdict until it has learned this many spam and ham messages. */
  minSpam: z.number().int().min(1).default(200),
  minHam: z.number().int().min(1).default(200),
  /** Releasing a message quarantined as spam teaches it that the message is ham. */
  learnOnRelease: z.boolean().default(true),
});

export const zGatewayConfig = z.strictObject({
  version: z.literal(GATEWAY_CONFIG_VERSION, {
    error: (issue) =>
      `this gateway reads gatewayConfig version ${GATEWAY_CONFIG_VERSION}, got ${JSON.stringify(issue.input)}`,
  }),
  /** The customer: the Pulumi stack name. */
  customer: z.string().min(1),
  tenantId: zGuid,
  domains: z
    .array(
      z.strictObject({
        name: zDomainName,
        mtaSts: z.enum(["enforce", "testing", "none"]),
        /** Where the domain's MX points: the MTA-STS policy lists these. */
        mxHosts: z.array(zHostName).min(1),
      }),
    )
    .min(1),
  smtp: z.strictObject({
    listen: zHostPort,
    /** Host name in the banner, EHLO and Received headers (the MX host). */
    hostname: zHostName,
    /** Sessions at once (421 beyond), and per-client limits (inbound/limits.ts). */
    limits: z.strictObject({
      maxConnections: z.number().int().positive(),
      maxConnectionsPerIp: z.number().int().positive(),
      connectionsPerMinutePerIp: z.number().int().positive(),
      messagesPerMinutePerIp: z.number().int().positive(),
    }),
    /** PEM files for STARTTLS; without them STARTTLS is not offered (logged at start-up). */
    tls: z.strictObject({ certFile: z.string().min(1), keyFile: z.string().min(1) }).optional(),
  }),
  http: z.strictObject({ listen: zHostPort }),
  /** Spool, quarantine and tracker live here. */
  dataDir: z.string().min(1),
  verification: z.strictObject({
    mode: z.enum(["static", "dynamic"]),
    /** `dynamic`: how long callout answers are remembered, and how long one may take. */
    callout: z.strictObject({
      positiveTtlMs: z.number().int().positive(),
      negativeTtlMs: z.number().int().positive(),
      timeoutMs: z.number().int().positive(),
    }),
  }),
  directory: z.strictObject({
    /** Spreadsheet import (moat:users); merged below the Entra ID sync (directory/directory.ts). */
    users: z.array(zStaticUser),
    /** Directory sync from Entra ID (needs `graph`): every this many minutes, plus up to 10% jitter. */
    syncIntervalMinutes: z.number().int().min(5).max(1440).default(60),
  }),
  delivery: z.strictObject({
    smartHost: z.strictObject({ host: zHostName, port: z.number().int().min(1).max(65535) }),
    /**
     * `required`: STARTTLS must succeed or the message stays queued. `allow-plain`: use
     * STARTTLS when offered, else deliver in clear (local development only, logged loudly).
     */
    tls: z.enum(["required", "allow-plain"]),
    /** Check the smart host's certificate against its name. false only for lab setups (logged loudly). */
    verifyCertificate: z.boolean(),
    retry: zRetry,
  }),
  policy: zPolicy,
  outbound: z.strictObject({
    enabled: z.boolean(),
    /** Where the tenant's outbound mail may come from (Exchange Online's ranges, shared by every tenant). */
    relayFrom: z.array(zIpOrCidr()),
    /** SMTP port of internet MX hosts: 25, other than that only in lab setups. */
    remotePort: z.number().int().min(1).max(65535),
    /** Send outbound mail through this relay (STARTTLS required, certificate verified) instead of MX delivery. */
    smartHost: z.strictObject({ host: zHostName, port: z.number().int().min(1).max(65535) }).optional(),
  }),
  /** Resolvers for MX, MTA-STS and authentication lookups; [] = the system's. */
  dns: z.strictObject({ servers: z.array(zHostPortOrIp) }),
  /** Entra ID app the gateway uses for Graph (directory sync). Holds a secret. */
  graph: z
    .strictObject({
      clientId: zGuid,
      credential: z.union([
        z.strictObject({ clientSecret: z.string().min(1) }),
        z.strictObject({
          certificatePem: z.string().includes("BEGIN CERTIFICATE"),
          privateKeyPem: z.string().includes("PRIVATE KEY"),
        }),
      ]),
      endpoint: z.url({ protocol: /^https$/ }),
      authorityHost: z.url({ protocol: /^https$/ }),
    })
    .optional(),
  releaseRequests: z.strictObject({
    /** Who is told about a recipient's request to release a quarantined message. */
    notify: z.array(zEmailAddress),
    /** Where the links in quarantine notices point (the tracker's public address); default https://<smtp.hostname>. */
    linkBaseUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** How long a link in a notice works. */
    linkValidDays: z.number().int().min(1).max(90).default(14),
  }),
  /** The scanning engines; without them those detectors do not run (MOAT_RSPAMD_URL, MOAT_CLAMD). */
  filters: z
    .strictObject({
      rspamdUrl: z.url({ protocol: /^https?$/ }).optional(),
      clamd: z.strictObject({ host: zHostName, port: z.number().int().min(1).max(65535) }).optional(),
      /** An engine that cannot scan a message it would otherwise deliver: 451 in the session, or accept and hold. */
      onEngineFailure: z.enum(["tempfail", "hold"]).default("tempfail"),
      /** false: no verdict at all, every accepted message is delivered (benchmarks, troubleshooting). */
      enabled: z.boolean().default(true),
      /** The spam score (rspamd's score + Bayes's part) at which a message is spam. */
      spamThreshold: z.number().positive().default(6),
      /** The per-customer Bayes filter (<dataDir>/bayes.sqlite, trained by `moat learn` and releases). */
      bayes: zBayes.prefault({}),
      /**
       * Where the verdict runs (filters/thread-scanner.ts; README "Where the verdict runs"): true,
       * in a thread of its own; false, in the gateway's thread; "auto", its own thread when the
       * process can keep two CPUs busy (usable-cpus.ts: the cgroup quota counts).
       */
      scanThread: zBooleanOrAuto,
    })
    .prefault({}), // absent: parsed as {}, so the defaults above apply (stated once)
  /**
   * Keep the gateway's helper threads (libuv's file pool, V8's helpers, the checkpointer) off one
   * CPU, which its event loop then never shares with them; the verdict's own thread, like the
   * loop, runs on any (loop-cpu.ts; README "Where the verdict runs"): "auto", when the process can
   * keep two CPUs busy; true, whenever it may run on two; false, never.
   */
  loopCpu: zBooleanOrAuto,
  /** Global (stacks/global-rules.csv) and customer (moat:rules) rules, in file order. */
  rules: z.array(zRule).default([]),
  /** How long the tracker keeps records and the quarantine keeps bodies (purged daily). */
  retention: zRetention,
  /** Who may use the admin API (/api/). Without tokens every /api/ request is refused. */
  access: z
    .strictObject({ tokens: z.array(zApiToken), admins: z.array(zAdminAccount).default([]) })
    .default({ tokens: [], admins: [] }),
});

/** The parsed, normalised document. Treat as immutable. */
export type GatewayConfig = Readonly<z.output<typeof zGatewayConfig>>;
/** The document as written to JSON (what the Pulumi program produces). */
export type GatewayConfigInput = z.input<typeof zGatewayConfig>;

export class GatewayConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid gatewayConfig:\n  ${problems.join("\n  ")}`);
    this.name = "GatewayConfigError";
  }
}

/** `moat:domains[1].spf` style, after a prefix such as `moat:` or `gatewayConfig`. */
export function formatIssuePath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" || out.endsWith(":") ? String(key) : `.${String(key)}`;
  }
  return out;
}

export function formatIssues(prefix: string, issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.flatMap((issue) => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => `${formatIssuePath(prefix, [...issue.path, key])}: unknown key`);
    }
    if (issue.code === "invalid_type" && issue.input === undefined) {
      return [`${formatIssuePath(prefix, issue.path)}: required`];
    }
    return [`${formatIssuePath(prefix, issue.path)}: ${issue.message}`];
  });
}

/**
 * Accepts the document itself or the JSON of `pulumi stack output --json --show-secrets`
 * (an object holding `gatewayConfig`). Throws GatewayConfigError naming every problem.
 */
export function parseGatewayConfig(json: unknown): GatewayConfig {
  const document =
    typeof json === "object" && json !== null && "gatewayConfig" in json
      ? (json as { gatewayConfig: unknown }).gatewayConfig
      : json;
  if (typeof document === "string" && document.startsWith("[secret]")) {
    throw new GatewayConfigError([
      "gatewayConfig: the value is masked; export it with `pulumi stack output --json --show-secrets`",
    ]);
  }
  const result = zGatewayConfig.safeParse(document);
  if (!result.success) throw new GatewayConfigError(formatIssues("gatewayConfig", result.error.issues));
  return result.data;
}
