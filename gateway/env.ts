/**
 * Environment overrides (SPEC §4) for local runs, tests and containers, applied on top of
 * the parsed gatewayConfig into a new object. A malformed value is an error naming the
 * variable; it never silently falls back to the config.
 */
import { type GatewayConfig, GatewayConfigError } from "./config";
import { zHostPortOrIp } from "./config-values";
import { parseHostPort } from "./names";

export type Env = Readonly<Record<string, string | undefined>>;

function hostPort(env: Env, name: string): { host: string; port: number } | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  const parsed = parseHostPort(value);
  if (!parsed) throw new GatewayConfigError([`${name}: ${JSON.stringify(value)} is not host:port`]);
  return parsed;
}

/** Graph and the authority are spoken to over HTTPS only (tokens travel in the clear otherwise). */
function httpsUrl(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new GatewayConfigError([`${name}: ${JSON.stringify(value)} is not a URL`]);
  }
  if (url.protocol !== "https:") throw new GatewayConfigError([`${name}: ${JSON.stringify(value)} must be https://`]);
  return value.replace(/\/+$/, "");
}

export function applyEnvOverrides(config: GatewayConfig, env: Env): { config: GatewayConfig; applied: string[] } {
  const applied: string[] = [];
  const smtpListen = hostPort(env, "MOAT_SMTP_LISTEN");
  const httpListen = hostPort(env, "MOAT_HTTP_LISTEN");
  const smartHost = hostPort(env, "MOAT_SMART_HOST");
  if (smartHost && smartHost.port === 0) {
    throw new GatewayConfigError(["MOAT_SMART_HOST: port 0 is not a smart host port"]);
  }
  const dataDir = env.MOAT_DATA_DIR || undefined;
  const dnsServers = env.MOAT_DNS_SERVERS
    ? env.MOAT_DNS_SERVERS.split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  for (const server of dnsServers ?? []) {
    if (!zHostPortOrIp.safeParse(server).success)
      throw new GatewayConfigError([
        `MOAT_DNS_SERVERS: ${JSON.stringify(server)} is not a DNS server address (IP or IP:port)`,
      ]);
  }
  const clamd = hostPort(env, "MOAT_CLAMD");
  const rspamdUrl = env.MOAT_RSPAMD_URL || undefined;
  if (rspamdUrl !== undefined && !/^https?:\/\/[^\s/]+/.test(rspamdUrl))
    throw new GatewayConfigError([`MOAT_RSPAMD_URL: ${JSON.stringify(rspamdUrl)} is not an http(s) URL`]);
  const graphEndpoint = httpsUrl(env, "MOAT_GRAPH_ENDPOINT");
  const authorityHost = httpsUrl(env, "MOAT_AUTHORITY_HOST");
  if ((graphEndpoint || authorityHost) && !config.graph)
    throw new GatewayConfigError([
      `${graphEndpoint ? "MOAT_GRAPH_ENDPOINT" : "MOAT_AUTHORITY_HOST"}: the gatewayConfig has no graph section (no Entra ID app to sync the directory with)`,
    ]);
  for (const [name, value] of Object.entries({
    MOAT_SMTP_LISTEN: smtpListen,
    MOAT_HTTP_LISTEN: httpListen,
    MOAT_SMART_HOST: smartHost,
    MOAT_DATA_DIR: dataDir,
    MOAT_DNS_SERVERS: dnsServers,
    MOAT_GRAPH_ENDPOINT: graphEndpoint,
    MOAT_AUTHORITY_HOST: authorityHost,
    MOAT_RSPAMD_URL: rspamdUrl,
    MOAT_CLAMD: clamd,
  })) {
    if (value !== undefined) applied.push(name);
  }
  return {
    applied,
    config: {
      ...config,
      smtp: { ...config.smtp, listen: smtpListen ?? config.smtp.listen },
      http: { ...config.http, listen: httpListen ?? config.http.listen },
      dataDir: dataDir ?? config.dataDir,
      dns: { servers: dnsServers ?? config.dns.servers },
      delivery: { ...config.delivery, smartHost: smartHost ?? config.delivery.smartHost },
      filters: {
        ...config.filters,
        ...(rspamdUrl ? { rspamdUrl } : {}),
        ...(clamd ? { clamd } : {}),
      },
      ...(config.graph
        ? {
            graph: {
              ...config.graph,
              endpoint: graphEndpoint ?? config.graph.endpoint,
              authorityHost: authorityHost ?? config.graph.authorityHost,
            },
          }
        : {}),
    },
  };
}
