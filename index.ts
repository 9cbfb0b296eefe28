/**
 * The Pulumi program: stack config -> components -> outputs.
 *
 * The whole stack config (every `moat:*` key, the files it names, SPF lookups, cut-over
 * safety, and the Exchange objects it implies) is validated before any resource is
 * registered; a bad config stops here with every problem and its key path.
 *
 * Order that matters: the gateway (hosting) and the Exchange lock-down connector exist
 * before the MX of a cut-over domain points at the gateway. The gatewayConfig output is the
 * document gateway/config.ts defines; it holds the gateway app's credential, so it is a secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { CLOUDS } from "./components/clouds";
import { CustomerDns } from "./components/dns";
import { EntraApp } from "./components/entra-app";
import { ExchangeAdminApp } from "./components/exchange-admin-app";
import { RoutingPlanError, planExchangeRouting } from "./components/exchange/plan";
import { ExchangeRouting } from "./components/exchange/routing";
import { buildGatewayConfig } from "./components/gateway-document";
import { AzureHosting, CONTAINER_HOSTING, CONTAINER_TLS_FILE } from "./components/hosting";
import { SettingsError, defaultSmartHost, gatewayHostname } from "./components/settings";
import { type LoadedStack, PROJECT_DIR, loadStack } from "./components/stack-config";

function loadOrExplain(): LoadedStack {
  try {
    const loaded = loadStack(pulumi.getStack(), pulumi.runtime.allConfig(), PROJECT_DIR);
    const { settings } = loaded;
    planExchangeRouting({ settings, egressIps: [], gatewayHost: gatewayHostname(settings), customer: loaded.name });
    return loaded;
  } catch (error) {
    if (error instanceof SettingsError || error instanceof RoutingPlanError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

const stack = loadOrExplain();
const { settings } = stack;
const cloud = CLOUDS[settings.cloud];
const gatewayHost = gatewayHostname(settings);

const app = new EntraApp("gateway", {
  displayName: `Moat gateway (${stack.name})`,
  credential: settings.gateway.credential,
  credentialRotation: settings.gateway.credentialRotation,
});

// With a Key Vault certificate, the gateway offers STARTTLS from the file the hosting mounts.
const containerHosting =
  settings.gateway.hosting === "azure" && settings.gateway.tlsCertificate
    ? { ...CONTAINER_HOSTING, tls: { certFile: CONTAINER_TLS_FILE, keyFile: CONTAINER_TLS_FILE } }
    : CONTAINER_HOSTING;

export const gatewayConfig = pulumi.secret(
  pulumi.all([app.clientId, app.credential]).apply(([clientId, credential]) =>
    buildGatewayConfig(stack, containerHosting, {
      clientId,
      credential,
      endpoint: cloud.graphEndpoint,
      authorityHost: cloud.authorityHost,
    }),
  ),
);

const hosting =
  settings.gateway.hosting === "azure"
    ? new AzureHosting("hosting", {
        customer: stack.name,
        tenantId: settings.tenantId,
        location: settings.gateway.location,
        image: settings.gateway.image ?? "",
        rspamdImage: settings.gateway.rspamdImage,
        clamavImage: settings.gateway.clamavImage,
        cpu: settings.gateway.cpu ?? 1,
        gatewayConfig,
        ...(settings.gateway.tlsCertificate ? { tlsCertificate: settings.gateway.tlsCertificate } : {}),
      })
    : undefined;
const egress: pulumi.Output<string[]> = hosting ? hosting.egressIps : pulumi.output([...settings.gateway.egressIps]);
const inbound: pulumi.Output<string> = hosting ? hosting.inboundIp : pulumi.output(settings.gateway.inboundIp ?? "");

let routing: ExchangeRouting | undefined;
if (settings.exchange.manage) {
  const exchangeAdmin = new ExchangeAdminApp("exchange-admin", {
    displayName: `Moat Exchange provisioning (${stack.name})`,
  });
  routing = new ExchangeRouting("exchange", {
    settings,
    egressIps: egress,
    gatewayHost,
    customer: stack.name,
    connection: pulumi
      .all([exchangeAdmin.clientId, exchangeAdmin.clientSecret, exchangeAdmin.ready])
      .apply(([clientId, clientSecret]) => ({
        tenantId: settings.tenantId,
        clientId,
        clientSecret,
        authorityHost: cloud.authorityHost,
        endpoint: cloud.exchangeEndpoint,
      })),
  });
}

new CustomerDns("dns", {
  settings,
  gatewayHost,
  egressIps: egress,
  inboundIp: inbound,
  cutoverDependsOn: [...(hosting ? [hosting.containerApp] : []), ...(routing ? [routing] : [])],
});

export const appClientId = app.clientId;
export const mxHost = gatewayHost;
export const inboundIps = inbound.apply((ip) => (ip ? [ip] : []));
export const egressIps = egress;
export const smartHost = settings.smartHost ?? defaultSmartHost(settings.domains[0]?.name ?? "");
