/**
 * Child-process entry of `moat plan --stack NAME`: runs the program offline for that stack,
 * with clearly marked placeholders where the cloud would compute a value, and prints the
 * run as JSON on stdout. Secret config values of other namespaces (provider tokens) are not
 * needed offline and are passed as a placeholder.
 */
import { GRAPH_PERMISSIONS } from "../entra-app";
import { EXCHANGE_MANAGE_AS_APP } from "../exchange-admin-app";
import { PROJECT_DIR, readStackFile } from "../stack-config";
import { type CloudStandIn, runOffline } from "./mocks";

const AT_DEPLOY = "(known after deploy)";
const PLACEHOLDER_GUID = "00000000-0000-0000-0000-000000000000";
/** App roles the program reads from service principals; their ids come from the tenant. */
const ROLES_READ_FROM_TENANT = [...GRAPH_PERMISSIONS, EXCHANGE_MANAGE_AS_APP];

const cloud: CloudStandIn = {
  computed(type) {
    switch (type) {
      case "azuread:index/application:Application":
        return { clientId: PLACEHOLDER_GUID };
      case "azuread:index/servicePrincipal:ServicePrincipal":
        return { objectId: AT_DEPLOY };
      case "azuread:index/applicationPassword:ApplicationPassword":
        return { value: AT_DEPLOY };
      case "azuread:index/directoryRole:DirectoryRole":
        return { templateId: AT_DEPLOY };
      case "tls:index/privateKey:PrivateKey":
        return { privateKeyPem: `-----BEGIN PRIVATE KEY-----${AT_DEPLOY}-----END PRIVATE KEY-----` };
      case "tls:index/selfSignedCert:SelfSignedCert":
        return {
          certPem: `-----BEGIN CERTIFICATE-----${AT_DEPLOY}-----END CERTIFICATE-----`,
          validityEndTime: AT_DEPLOY,
        };
      case "azure-native:network:PublicIPAddress":
        return { ipAddress: AT_DEPLOY };
      case "azure-native:app:ManagedEnvironment":
        return { staticIp: AT_DEPLOY };
      case "azure-native:keyvault:Vault":
        return { properties: { vaultUri: "https://(vault, known after deploy)/" } };
      case "azure-native:keyvault:Secret":
        return { properties: { secretUri: AT_DEPLOY } };
      default:
        return {};
    }
  },
  invoke(token, inputs) {
    switch (token) {
      case "azuread:index/getServicePrincipal:getServicePrincipal":
        return {
          ...inputs,
          objectId: AT_DEPLOY,
          appRoleIds: Object.fromEntries(
            ROLES_READ_FROM_TENANT.map((role) => [role, `(id of app role ${role}, read from the tenant)`]),
          ),
        };
      case "cloudflare:index/getZone:getZone":
        return {
          ...inputs,
          id: `(zone id of ${(inputs.filter as { name?: string } | undefined)?.name ?? "?"}, looked up by name)`,
        };
      case "azure-native:operationalinsights:getSharedKeys":
        return { primarySharedKey: AT_DEPLOY };
      case "azure-native:storage:listStorageAccountKeys":
        return { keys: [{ value: AT_DEPLOY }] };
      case "azure-native:authorization:getClientConfig":
        return { subscriptionId: "(subscription)" };
      default:
        return {};
    }
  },
};

const stack = process.argv[2] ?? "";
let config: Record<string, unknown>;
try {
  config = Object.fromEntries(
    Object.entries(readStackFile(PROJECT_DIR, stack)).map(([key, value]) => [
      key,
      typeof value === "object" && value !== null && "secure" in value && !key.startsWith("moat:") ? "[secret]" : value,
    ]),
  );
} catch (error) {
  process.stdout.write(JSON.stringify({ registered: [], outputs: {}, error: (error as Error).message }));
  process.exit(0);
}
runOffline(stack, config, cloud).then(
  (run) => process.stdout.write(JSON.stringify(run)),
  (error: Error) =>
    process.stdout.write(JSON.stringify({ registered: [], outputs: {}, error: `plan failed: ${error.message}` })),
);
