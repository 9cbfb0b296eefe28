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
import { FAKE_CLIENT_ID, FAKE_EXCHANGE_ADMIN_TEMPLATE, FAKE_EXCHANGE_CLIENT_ID, FAKE_EXCHANGE_SECRET, FAKE_EXCHANGE_SP, FAKE_MANAGE_AS_APP_ROLE, FAKE_SECRET } from "./pulumi-fakes";

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
        const outputs: Record<string, unknown> = { ...args.inputs };
        const gateway = args.name.startsWith("gateway-");
        if (args.type === "azuread:index/application:Application") outputs.clientId = gateway ? FAKE_CLIENT_ID : FAKE_EXCHANGE_CLIENT_ID;
        if (args.type === "azuread:index/servicePrincipal:ServicePrincipal") outputs.objectId = `${args.name}-object-id`;
        if (args.type === "azuread:index/applicationPassword:ApplicationPassword") outputs.value = gateway ? FAKE_SECRET : FAKE_EXCHANGE_SECRET;
        if (args.type === "azuread:index/directoryRole:DirectoryRole") outputs.templateId = FAKE_EXCHANGE_ADMIN_TEMPLATE;
        return { id: `${args.name}-id`, state: outputs };
      },
      call(args) {
        if (args.token === "azuread:index/getServicePrincipal:getServicePrincipal") {
          return { ...args.inputs, objectId: FAKE_EXCHANGE_SP, appRoleIds: { "Exchange.ManageAsApp": FAKE_MANAGE_AS_APP_ROLE } };
        }
        throw new Error(`unexpected invoke ${args.token}`);
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
