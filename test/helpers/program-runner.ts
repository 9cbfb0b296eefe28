/**
 * Child-process entry for the tests: runs the program offline (components/offline/mocks.ts)
 * with fixed fake cloud values and prints the run as JSON on stdout.
 * Input: env MOAT_TEST_STACK and MOAT_TEST_CONFIG (JSON of the stack's config map).
 */
import { runOffline } from "../../components/offline/mocks";
import * as fake from "./pulumi-fakes";

const cloud = {
  computed(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown> {
    const gateway = name.startsWith("gateway-");
    switch (type) {
      case "azuread:index/application:Application":
        return { clientId: gateway ? fake.FAKE_CLIENT_ID : fake.FAKE_EXCHANGE_CLIENT_ID };
      case "azuread:index/servicePrincipal:ServicePrincipal":
        return { objectId: `${name}-object-id` };
      case "azuread:index/applicationPassword:ApplicationPassword":
        return { value: gateway ? fake.FAKE_SECRET : fake.FAKE_EXCHANGE_SECRET };
      case "azuread:index/directoryRole:DirectoryRole":
        return { templateId: fake.FAKE_EXCHANGE_ADMIN_TEMPLATE };
      case "tls:index/privateKey:PrivateKey":
        return { privateKeyPem: fake.FAKE_KEY_PEM };
      case "tls:index/selfSignedCert:SelfSignedCert":
        return { certPem: fake.FAKE_CERT_PEM, validityEndTime: "2028-11-22T00:00:00Z" };
      case "azure-native:network:PublicIPAddress":
        return { ipAddress: fake.FAKE_EGRESS_IP };
      case "azure-native:app:ManagedEnvironment":
        return { staticIp: fake.FAKE_INBOUND_IP };
      case "azure-native:keyvault:Secret":
        return {
          properties: {
            ...(fake.unwrapSecrets(inputs.properties) as object),
            secretUri: "https://vault.vault.azure.net/secrets/gateway-config",
          },
        };
      case "azure-native:keyvault:Vault":
        return {
          properties: {
            ...(fake.unwrapSecrets(inputs.properties) as object),
            vaultUri: "https://hosting-vault.vault.azure.net/",
          },
        };
      case "azure-native:operationalinsights:Workspace":
        return { customerId: "log-analytics-customer-id" };
      default:
        return {};
    }
  },
  invoke(token: string, inputs: Record<string, unknown>): Record<string, unknown> {
    switch (token) {
      case "azuread:index/getServicePrincipal:getServicePrincipal":
        return inputs.clientId === "00000003-0000-0000-c000-000000000000"
          ? {
              ...inputs,
              objectId: fake.FAKE_GRAPH_SP,
              appRoleIds: {
                "User.Read.All": fake.FAKE_USER_READ_ALL_ROLE,
                "GroupMember.Read.All": fake.FAKE_GROUP_MEMBER_READ_ALL_ROLE,
                "Mail.Send": "not-to-be-used",
              },
            }
          : {
              ...inputs,
              objectId: fake.FAKE_EXCHANGE_SP,
              appRoleIds: { "Exchange.ManageAsApp": fake.FAKE_MANAGE_AS_APP_ROLE },
            };
      case "cloudflare:index/getZone:getZone":
        return { ...inputs, id: fake.FAKE_ZONE_ID, name: (inputs.filter as { name?: string } | undefined)?.name };
      case "azure-native:operationalinsights:getSharedKeys":
        return { primarySharedKey: "fake-log-analytics-key", secondarySharedKey: "x" };
      case "azure-native:storage:listStorageAccountKeys":
        return { keys: [{ keyName: "key1", value: "fake-storage-key", permissions: "FULL" }] };
      case "azure-native:authorization:getClientConfig":
        return { clientId: "c", objectId: "o", subscriptionId: "00000000-aaaa-bbbb-cccc-000000000000", tenantId: "t" };
      default:
        throw new Error(`unexpected invoke ${token}`);
    }
  },
};

runOffline(
  process.env.MOAT_TEST_STACK ?? "example",
  JSON.parse(process.env.MOAT_TEST_CONFIG ?? "{}") as Record<string, unknown>,
  cloud,
).then(
  (run) => process.stdout.write(JSON.stringify(run)),
  (error: Error) => process.stdout.write(JSON.stringify({ error: `runner failed: ${error.stack}` })),
);
