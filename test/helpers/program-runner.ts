/**
 * Runs the Pulumi program (index.ts) under pulumi.runtime.setMocks in this process, the way
 * `pulumi up` would run it (tsx, not vitest's module runner: dynamic providers are serialized
 * from the real functions), and prints one JSON document on stdout: every registered resource
 * with its inputs, and every stack output with its value and whether it is secret. A program
 * that fails prints `{ "error": message }`.
 *
 * Input: env MOAT_TEST_STACK (stack name) and MOAT_TEST_CONFIG (JSON of the stack's config map).
 */
import * as pulumi from "@pulumi/pulumi";
import * as fake from "./pulumi-fakes";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

async function main(): Promise<void> {
  const stack = process.env.MOAT_TEST_STACK ?? "example";
  const config = JSON.parse(process.env.MOAT_TEST_CONFIG ?? "{}") as Record<string, unknown>;
  const registered: Registered[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        const outputs: Record<string, unknown> = { ...args.inputs, name: args.inputs.name ?? args.name };
        const gateway = args.name.startsWith("gateway-");
        switch (args.type) {
          case "azuread:index/application:Application":
            outputs.clientId = gateway ? fake.FAKE_CLIENT_ID : fake.FAKE_EXCHANGE_CLIENT_ID;
            break;
          case "azuread:index/servicePrincipal:ServicePrincipal":
            outputs.objectId = `${args.name}-object-id`;
            break;
          case "azuread:index/applicationPassword:ApplicationPassword":
            outputs.value = gateway ? fake.FAKE_SECRET : fake.FAKE_EXCHANGE_SECRET;
            break;
          case "azuread:index/directoryRole:DirectoryRole":
            outputs.templateId = fake.FAKE_EXCHANGE_ADMIN_TEMPLATE;
            break;
          case "tls:index/privateKey:PrivateKey":
            outputs.privateKeyPem = fake.FAKE_KEY_PEM;
            break;
          case "tls:index/selfSignedCert:SelfSignedCert":
            Object.assign(outputs, { certPem: fake.FAKE_CERT_PEM, validityEndTime: "2028-11-22T00:00:00Z" });
            break;
          case "azure-native:network:PublicIPAddress":
            outputs.ipAddress = fake.FAKE_EGRESS_IP;
            break;
          case "azure-native:app:ManagedEnvironment":
            outputs.staticIp = fake.FAKE_INBOUND_IP;
            break;
          case "azure-native:keyvault:Secret":
            outputs.properties = { ...(fake.unwrapSecrets(args.inputs.properties) as object), secretUri: "https://vault.vault.azure.net/secrets/gateway-config" };
            break;
          case "azure-native:operationalinsights:Workspace":
            outputs.customerId = "log-analytics-customer-id";
            break;
        }
        return { id: `${args.name}-id`, state: outputs };
      },
      call(args) {
        switch (args.token) {
          case "azuread:index/getServicePrincipal:getServicePrincipal":
            return args.inputs.clientId === "00000003-0000-0000-c000-000000000000"
              ? { ...args.inputs, objectId: fake.FAKE_GRAPH_SP, appRoleIds: { "User.Read.All": fake.FAKE_USER_READ_ALL_ROLE, "Mail.Send": "not-to-be-used" } }
              : { ...args.inputs, objectId: fake.FAKE_EXCHANGE_SP, appRoleIds: { "Exchange.ManageAsApp": fake.FAKE_MANAGE_AS_APP_ROLE } };
          case "cloudflare:index/getZone:getZone":
            return { ...args.inputs, id: fake.FAKE_ZONE_ID, name: (args.inputs.filter as { name?: string } | undefined)?.name };
          case "azure-native:operationalinsights:getSharedKeys":
            return { primarySharedKey: "fake-log-analytics-key", secondarySharedKey: "x" };
          case "azure-native:storage:listStorageAccountKeys":
            return { keys: [{ keyName: "key1", value: "fake-storage-key", permissions: "FULL" }] };
          case "azure-native:authorization:getClientConfig":
            return { clientId: "c", objectId: "o", subscriptionId: "00000000-aaaa-bbbb-cccc-000000000000", tenantId: "t" };
          default:
            throw new Error(`unexpected invoke ${args.token}`);
        }
      },
    },
    "moat",
    stack,
    false,
  );
  pulumi.runtime.setAllConfig(
    Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])),
  );
  let program: Record<string, unknown>;
  try {
    program = (await import("../../index.js")) as Record<string, unknown>;
  } catch (error) {
    process.stdout.write(JSON.stringify({ error: (error as Error).message, registered }));
    return;
  }
  const outputs: Record<string, { value: unknown; secret: boolean }> = {};
  for (const [key, value] of Object.entries(program)) {
    if (pulumi.Output.isInstance(value)) {
      const output = value as pulumi.Output<unknown>;
      const resolved = await new Promise((resolve) => output.apply((v) => resolve(v)));
      outputs[key] = { value: resolved, secret: await (output as unknown as { isSecret: Promise<boolean> }).isSecret };
    } else if (key !== "default") {
      outputs[key] = { value, secret: false };
    }
  }
  // Resources created inside apply() register after their inputs resolve.
  await new Promise((resolve) => setTimeout(resolve, 300));
  process.stdout.write(JSON.stringify({ registered, outputs }));
}

main().catch((error: Error) => {
  process.stdout.write(JSON.stringify({ error: `runner failed: ${error.stack}` }));
});
