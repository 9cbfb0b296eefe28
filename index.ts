/**
 * The Pulumi program: stack config -> components -> outputs.
 *
 * The whole stack config (every `moat:*` key, the files it names, and the Exchange objects
 * it implies) is validated before any resource is registered; a bad config stops here with
 * every problem and its key path. The gatewayConfig output is the document
 * gateway/config.ts defines; it holds the gateway app's client secret, so it is a secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { CLOUDS } from "./components/clouds";
import { EntraApp } from "./components/entra-app";
import { ExchangeAdminApp } from "./components/exchange-admin-app";
import { RoutingPlanError, planExchangeRouting } from "./components/exchange/plan";
import { ExchangeRouting } from "./components/exchange/routing";
import { buildGatewayConfig } from "./components/gateway-document";
import { CONTAINER_HOSTING } from "./components/hosting";
import { SettingsError, defaultSmartHost, gatewayHostname } from "./components/settings";
import { type LoadedStack, PROJECT_DIR, loadStack } from "./components/stack-config";

function loadOrExplain(): LoadedStack {
  try {
    const loaded = loadStack(pulumi.getStack(), pulumi.runtime.allConfig(), PROJECT_DIR);
    const { settings } = loaded;
    planExchangeRouting({ settings, egressIps: settings.gateway.egressIps, gatewayHost: gatewayHostname(settings), customer: loaded.name });
    return loaded;
  } catch (error) {
    if (error instanceof SettingsError || error instanceof RoutingPlanError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

const stack = loadOrExplain();
const { settings } = stack;
const cloud = CLOUDS[settings.cloud];
const mxHostName = gatewayHostname(settings);

const app = new EntraApp("gateway", { displayName: `Moat gateway (${stack.name})` });

if (settings.exchange.manage) {
  const exchangeAdmin = new ExchangeAdminApp("exchange-admin", { displayName: `Moat Exchange provisioning (${stack.name})` });
  new ExchangeRouting("exchange", {
    settings,
    egressIps: settings.gateway.egressIps,
    gatewayHost: mxHostName,
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

export const gatewayConfig = pulumi.secret(
  pulumi.all([app.clientId, app.clientSecret]).apply(([clientId, clientSecret]) =>
    buildGatewayConfig(stack, CONTAINER_HOSTING, {
      clientId,
      clientSecret,
      endpoint: cloud.graphEndpoint,
      authorityHost: cloud.authorityHost,
    }),
  ),
);
export const appClientId = app.clientId;
export const mxHost = mxHostName;
export const egressIps = [...settings.gateway.egressIps];
export const smartHost = settings.smartHost ?? defaultSmartHost(settings.domains[0]?.name ?? "");
