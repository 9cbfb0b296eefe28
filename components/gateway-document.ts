/**
 * Builds the gatewayConfig document (gateway/config.ts) from a loaded stack and what the
 * hosting provides. The Pulumi program calls it with resource outputs; the gateway's
 * embedded default calls it with local hosting. One code path, two callers.
 *
 * The result is the JSON document (the schema's input form), checked with the gateway's own
 * parser before it is returned, so a document the gateway would refuse never becomes a stack
 * output.
 */
import { GATEWAY_CONFIG_VERSION, type GatewayConfigInput, parseGatewayConfig } from "../gateway/config";
import { parseHostPort } from "../gateway/names";
import { mxHosts } from "./dns-records";
import { defaultSmartHost, gatewayHostname } from "./settings";
import type { LoadedStack } from "./stack-config";

/** What the place the gateway runs in decides (Azure hosting, or this machine). */
export interface GatewayHosting {
  readonly smtpListen: string;
  readonly httpListen: string;
  readonly dataDir: string;
  /** Overrides the stack's smart host (the local development mailbox). */
  readonly smartHost?: { readonly host: string; readonly port: number };
  readonly deliveryTls: "required" | "allow-plain";
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
  /** The scanning engines beside the gateway (the container's sidecars). */
  readonly engines?: {
    readonly rspamdUrl: string;
    readonly clamd: { readonly host: string; readonly port: number };
  };
}

export interface GraphCredentials {
  readonly clientId: string;
  readonly credential:
    { readonly clientSecret: string } | { readonly certificatePem: string; readonly privateKeyPem: string };
  readonly endpoint: string;
  readonly authorityHost: string;
}

/** Postfix's defaults: 5 min doubling up to ~1 h between tries, give up after 5 days. */
const RETRY_MIN_BACKOFF_MS = 5 * 60 * 1000;
const RETRY_MAX_BACKOFF_MS = 4000 * 1000;
const MAX_QUEUE_LIFETIME_MS = 5 * 24 * 60 * 60 * 1000;
const BYTES_PER_MB = 1024 * 1024;
/** A known mailbox stays known for a day; an unknown one is asked again after 15 minutes, so a new mailbox is not refused for long. */
const CALLOUT_POSITIVE_TTL_MS = 24 * 60 * 60 * 1000;
const CALLOUT_NEGATIVE_TTL_MS = 15 * 60 * 1000;
/** Within the sender's RCPT timeout (RFC 5321 §4.5.3.2.3: 5 minutes), far below it. */
const CALLOUT_TIMEOUT_MS = 20 * 1000;
export const SMTP_PORT = 25;
/**
 * Exchange Online's outbound ranges as Microsoft publishes them (Microsoft 365 URLs and IP
 * address ranges, Exchange Online "Mail" endpoints). Every tenant sends from them, so they
 * are only half the test: the gateway also requires this tenant's id on the message.
 */
export const EXCHANGE_ONLINE_RANGES = [
  "40.92.0.0/15",
  "40.107.0.0/16",
  "52.100.0.0/14",
  "104.47.0.0/17",
  "2a01:111:f400::/48",
  "2a01:111:f403::/48",
] as const;
/**
 * Generous for real mail servers (Exchange Online and other big senders spread over many
 * IPs), tight enough that one host cannot take the listener: Postfix's anvil-style limits.
 */
const SMTP_LIMITS = {
  maxConnections: 500,
  maxConnectionsPerIp: 20,
  connectionsPerMinutePerIp: 300,
  messagesPerMinutePerIp: 600,
} as const;

export function buildGatewayConfig(
  stack: LoadedStack,
  hosting: GatewayHosting,
  graph?: GraphCredentials,
): GatewayConfigInput {
  const { settings } = stack;
  const firstDomain = settings.domains[0]?.name ?? "";
  const { maxMessageMb, ...policy } = settings.policy;
  const document: GatewayConfigInput = {
    version: GATEWAY_CONFIG_VERSION,
    customer: stack.name,
    tenantId: settings.tenantId,
    domains: settings.domains.map((d) => ({
      name: d.name,
      mtaSts: d.mtaSts,
      mxHosts: mxHosts(d, gatewayHostname(settings)),
    })),
    smtp: {
      listen: hosting.smtpListen,
      hostname: gatewayHostname(settings),
      limits: { ...SMTP_LIMITS },
      ...(hosting.tls ? { tls: { ...hosting.tls } } : {}),
    },
    http: { listen: hosting.httpListen },
    dataDir: hosting.dataDir,
    verification: {
      mode: settings.verification,
      callout: {
        positiveTtlMs: CALLOUT_POSITIVE_TTL_MS,
        negativeTtlMs: CALLOUT_NEGATIVE_TTL_MS,
        timeoutMs: CALLOUT_TIMEOUT_MS,
      },
    },
    directory: {
      users: stack.users.map((u) => ({ address: u.address, displayName: u.displayName, aliases: [...u.aliases] })),
      syncIntervalMinutes: settings.directorySync.intervalMinutes,
    },
    delivery: {
      smartHost: hosting.smartHost
        ? { ...hosting.smartHost }
        : { host: settings.smartHost ?? defaultSmartHost(firstDomain), port: SMTP_PORT },
      tls: hosting.deliveryTls,
      verifyCertificate: true,
      retry: {
        minBackoffMs: RETRY_MIN_BACKOFF_MS,
        maxBackoffMs: RETRY_MAX_BACKOFF_MS,
        maxQueueLifetimeMs: MAX_QUEUE_LIFETIME_MS,
      },
    },
    policy: {
      ...policy,
      bannedExtensions: [...policy.bannedExtensions],
      maxMessageBytes: Math.round(maxMessageMb * BYTES_PER_MB),
    },
    outbound: {
      enabled: settings.outbound.enabled,
      relayFrom: [...EXCHANGE_ONLINE_RANGES],
      remotePort: SMTP_PORT,
      ...(settings.outbound.smartHost ? { smartHost: parseHostPort(settings.outbound.smartHost) } : {}),
    },
    dns: { servers: [] },
    ...(graph ? { graph: { ...graph, credential: { ...graph.credential } } } : {}),
    releaseRequests: {
      notify: [...settings.releaseRequests.notify],
      ...(settings.releaseRequests.linkBaseUrl ? { linkBaseUrl: settings.releaseRequests.linkBaseUrl } : {}),
      linkValidDays: settings.releaseRequests.linkValidDays,
    },
    retention: { ...settings.retention },
    access: {
      tokens: settings.access.tokens.map((t) => ({ ...t })),
      admins: settings.access.admins.map((a) => ({ ...a })),
    },
    filters: {
      ...(hosting.engines ? { rspamdUrl: hosting.engines.rspamdUrl, clamd: { ...hosting.engines.clamd } } : {}),
      onEngineFailure: "tempfail",
    },
    rules: stack.rules.map((r) => ({ ...r })),
  };
  parseGatewayConfig(document);
  return document;
}
