/**
 * The Pulumi program: stack config -> components -> outputs.
 *
 * The whole stack config (every `moat:*` key and the files it names) is validated before
 * any resource is registered; a bad config stops here with every problem and its key path.
 * The gatewayConfig output is the document gateway/config.ts defines; it holds the app's
 * client secret, so it is a Pulumi secret.
 */
import * as pulumi from "@pulumi/pulumi";
import { EntraApp } from "./components/entra-app";
import { buildGatewayConfig } from "./components/gateway-document";
import { CONTAINER_HOSTING } from "./components/hosting";
import { SettingsError, defaultSmartHost, gatewayHostname } from "./components/settings";
import { type LoadedStack, PROJECT_DIR, loadStack } from "./components/stack-config";

/** Microsoft Graph and the Entra authority in the global cloud; national clouds differ. */
const GRAPH_ENDPOINT = "https://graph.microsoft.com";
const AUTHORITY_HOST = "https://login.microsoftonline.com";

function loadOrExplain(): LoadedStack {
  try {
    return loadStack(pulumi.getStack(), pulumi.runtime.allConfig(), PROJECT_DIR);
  } catch (error) {
    if (error instanceof SettingsError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

const stack = loadOrExplain();
const { settings } = stack;

const app = new EntraApp("gateway", { displayName: `Moat gateway (${stack.name})` });

export const gatewayConfig = pulumi.secret(
  pulumi.all([app.clientId, app.clientSecret]).apply(([clientId, clientSecret]) =>
    buildGatewayConfig(stack, CONTAINER_HOSTING, {
      clientId,
      clientSecret,
      endpoint: GRAPH_ENDPOINT,
      authorityHost: AUTHORITY_HOST,
    }),
  ),
);
export const appClientId = app.clientId;
export const mxHost = gatewayHostname(settings);
export const smartHost = settings.smartHost ?? defaultSmartHost(settings.domains[0]?.name ?? "");
