/**
 * Sets up pulumi.runtime mocks for running index.ts offline: records every registered
 * resource with its inputs, fakes provider-computed outputs (ids, clientId, secret values),
 * and loads a stack's config the way `pulumi up` would (values as strings, structured ones
 * as JSON text).
 */
import * as pulumi from "@pulumi/pulumi";
import { PROJECT_DIR, readStackFile } from "../../components/stack-config";

export interface RegisteredResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

export const FAKE_CLIENT_ID = "99999999-8888-7777-6666-555555555555";
export const FAKE_SECRET = "fake-client-secret-value-from-mocks";

export function asPulumiConfig(config: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(config).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]),
  );
}

export async function mockStack(stackName: string, config: Record<string, unknown> = readStackFile(PROJECT_DIR, stackName)): Promise<RegisteredResource[]> {
  const registered: RegisteredResource[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        const outputs: Record<string, unknown> = { ...args.inputs };
        if (args.type === "azuread:index/application:Application") outputs.clientId = FAKE_CLIENT_ID;
        if (args.type === "azuread:index/servicePrincipal:ServicePrincipal") outputs.objectId = "sp-object-id";
        if (args.type === "azuread:index/applicationPassword:ApplicationPassword") outputs.value = FAKE_SECRET;
        return { id: `${args.name}-id`, state: outputs };
      },
      call(args) {
        return args.inputs;
      },
    },
    "moat",
    stackName,
    false,
  );
  pulumi.runtime.setAllConfig(asPulumiConfig(config));
  return registered;
}

export function outputValue<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((value) => resolve(value)));
}

export async function isSecretOutput(output: pulumi.Output<unknown>): Promise<boolean> {
  return (output as unknown as { isSecret: Promise<boolean> }).isSecret;
}
