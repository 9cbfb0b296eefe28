/**
 * Runs the Pulumi program (index.ts) offline under pulumi.runtime.setMocks, in this process,
 * and reports every registered resource with its inputs and every stack output (value, and
 * whether it is secret). Used by `moat plan` (placeholders for what the cloud would compute)
 * and by the tests (fixed fake values to assert on). Run it in a child process through tsx,
 * as `pulumi up` runs the program: the Pulumi runtime is process-wide, and dynamic providers
 * must be serialized from the real functions.
 *
 * A program that fails reports `error` with the message (bad config names its key paths).
 */
import * as pulumi from "@pulumi/pulumi";

export interface RegisteredResource {
  readonly type: string;
  readonly name: string;
  readonly inputs: Record<string, unknown>;
}

export interface OfflineRun {
  readonly registered: RegisteredResource[];
  readonly outputs: Record<string, { value: unknown; secret: boolean }>;
  readonly error?: string;
}

export interface CloudStandIn {
  /** Outputs a provider would compute for a new resource (clientId, ipAddress, ...). */
  computed(type: string, name: string, inputs: Record<string, unknown>): Record<string, unknown>;
  /** Answers of data sources (invokes) such as getServicePrincipal or getZone. */
  invoke(token: string, inputs: Record<string, unknown>): Record<string, unknown>;
}

/** Resources created inside apply() register after their inputs resolve. */
const SETTLE_MS = 300;

export async function runOffline(
  stack: string,
  config: Record<string, unknown>,
  cloud: CloudStandIn,
): Promise<OfflineRun> {
  const registered: RegisteredResource[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        const state = {
          ...args.inputs,
          name: args.inputs.name ?? args.name,
          ...cloud.computed(args.type, args.name, args.inputs),
        };
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        return cloud.invoke(args.token, args.inputs);
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
    return { registered, outputs: {}, error: (error as Error).message };
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
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { registered, outputs };
}

/** Pulumi's wire form of a secret value: `{ [SECRET_SIG_KEY]: SECRET_SIG, value }`. */
export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** The value with every secret replaced by `replace(secretValue)`. */
export function mapSecrets(value: unknown, replace: (secret: unknown) => unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => mapSecrets(v, replace));
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[SECRET_SIG_KEY] === SECRET_SIG) return replace(record.value);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, mapSecrets(v, replace)]));
  }
  return value;
}
