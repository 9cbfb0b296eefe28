/**
 * Pulumi dynamic providers for Exchange Online inbound connectors, outbound connectors and
 * transport rules, over the admin REST endpoint (client.ts).
 *
 * - id = the object's Guid; every call after create passes the Guid as Identity, so a rename
 *   (`Set-… -Name`) keeps the identity. Import of an existing object by its name: read()
 *   accepts a name and answers with the Guid.
 * - diff compares the declared properties only (normalised: kinds.ts), so properties the
 *   stack does not declare are left as the admin set them, and a re-apply with nothing
 *   changed makes no call that changes anything.
 * - Transport rules: `Set-TransportRule` has no Enabled; Enable-/Disable-TransportRule do it.
 * - The credentials arrive as a secret input (`connection`) and a client is created inside
 *   each method: the serialized provider captures code, never a client or a credential.
 */
import * as pulumi from "@pulumi/pulumi";
import { ExchangeClient, type ExchangeClientOptions, ExchangeError } from "./client";
import {
  type ExchangeKind,
  type ExchangeProperties,
  DECLARABLE,
  changedProperties,
  observedProperties,
  validate,
} from "./kinds";

/** How the provider reaches the tenant; always passed as a Pulumi secret. */
export interface ExchangeConnectionInput {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly certificatePem?: string;
  readonly privateKeyPem?: string;
  readonly authorityHost?: string;
  readonly endpoint?: string;
}

export interface ExchangeObjectState {
  readonly connection: ExchangeConnectionInput;
  readonly name: string;
  readonly properties: ExchangeProperties;
  readonly guid?: string;
}

/** Reads right after New- may miss the object while it replicates. */
const READ_AFTER_CREATE_ATTEMPTS = 10;
const READ_AFTER_CREATE_INTERVAL_MS = 3000;

export function exchangeProvider(
  kind: ExchangeKind,
  clientOptions: ExchangeClientOptions = {},
): pulumi.dynamic.ResourceProvider {
  const connect = (input: ExchangeConnectionInput) => {
    const credential =
      input.certificatePem && input.privateKeyPem
        ? { certificatePem: input.certificatePem, privateKeyPem: input.privateKeyPem }
        : { clientSecret: input.clientSecret ?? "" };
    return new ExchangeClient(
      {
        tenantId: input.tenantId,
        clientId: input.clientId,
        credential,
        authorityHost: input.authorityHost,
        endpoint: input.endpoint,
      },
      clientOptions,
    );
  };
  const sleep = clientOptions.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  const get = async (client: ExchangeClient, identity: string) => {
    try {
      return (await client.invoke(`Get-${kind}`, { Identity: identity }))[0];
    } catch (error) {
      if (error instanceof ExchangeError && error.notFound) return undefined;
      throw error;
    }
  };

  const setProperties = async (client: ExchangeClient, id: string, changes: Record<string, unknown>) => {
    const { Enabled, ...rest } = changes;
    if (kind === "TransportRule") {
      if (Object.keys(rest).length > 0) await client.invoke("Set-TransportRule", { Identity: id, ...rest });
      if (Enabled !== undefined)
        await client.invoke(`${Enabled ? "Enable" : "Disable"}-TransportRule`, { Identity: id });
    } else if (Object.keys(changes).length > 0) {
      await client.invoke(`Set-${kind}`, { Identity: id, ...changes });
    }
  };

  return {
    async check(_olds: ExchangeObjectState, news: ExchangeObjectState) {
      const failures = validate(kind, String(news.name ?? ""), news.properties ?? {});
      return { inputs: news, failures };
    },

    async create(inputs: ExchangeObjectState) {
      const client = connect(inputs.connection);
      const [created] = await client.invoke(`New-${kind}`, { Name: inputs.name, ...inputs.properties });
      const guid = String(created?.Guid ?? "");
      if (!guid) throw new Error(`New-${kind} ${inputs.name}: the answer carried no Guid`);
      for (let attempt = 1; !(await get(client, guid)); attempt++) {
        if (attempt >= READ_AFTER_CREATE_ATTEMPTS)
          throw new Error(`New-${kind} ${inputs.name}: created as ${guid} but still not readable`);
        await sleep(READ_AFTER_CREATE_INTERVAL_MS);
      }
      return { id: guid, outs: { ...inputs, guid } };
    },

    async read(id: string, props: ExchangeObjectState) {
      const object = await get(connect(props.connection), id);
      if (!object) return { id: "", props: {} };
      // On import there is nothing declared yet: show every property Moat manages.
      const declared = Object.keys(props.properties ?? {});
      const keys =
        declared.length > 0
          ? declared
          : DECLARABLE[kind].filter((key) => key in object || (key === "Enabled" && "State" in object));
      return {
        id: String(object.Guid),
        props: {
          ...props,
          name: String(object.Name),
          guid: String(object.Guid),
          properties: observedProperties(kind, object, keys),
        },
      };
    },

    async diff(_id: string, olds: ExchangeObjectState, news: ExchangeObjectState) {
      const changed = changedProperties(news.properties ?? {}, olds.properties ?? {});
      return { changes: changed.length > 0 || olds.name !== news.name, replaces: [] };
    },

    async update(id: string, olds: ExchangeObjectState, news: ExchangeObjectState) {
      const client = connect(news.connection);
      const changes: Record<string, unknown> = {};
      for (const key of changedProperties(news.properties ?? {}, olds.properties ?? {}))
        changes[key] = news.properties[key];
      if (olds.name !== news.name) {
        if (kind === "TransportRule") await client.invoke("Set-TransportRule", { Identity: id, Name: news.name });
        else changes.Name = news.name;
      }
      await setProperties(client, id, changes);
      return { outs: { ...news, guid: id } };
    },

    async delete(id: string, props: ExchangeObjectState) {
      try {
        await connect(props.connection).invoke(`Remove-${kind}`, { Identity: id, Confirm: false });
      } catch (error) {
        if (!(error instanceof ExchangeError && error.notFound)) throw error;
      }
    },
  };
}

export interface ExchangeObjectArgs {
  readonly connection: pulumi.Input<ExchangeConnectionInput>;
  /** The object's Name in Exchange Online. */
  readonly name: pulumi.Input<string>;
  /** Cmdlet parameters (New-/Set-) that Moat manages on this object. */
  readonly properties: pulumi.Input<Record<string, pulumi.Input<unknown>>>;
}

const providers: Record<ExchangeKind, pulumi.dynamic.ResourceProvider> = {
  InboundConnector: exchangeProvider("InboundConnector"),
  OutboundConnector: exchangeProvider("OutboundConnector"),
  TransportRule: exchangeProvider("TransportRule"),
};

abstract class ExchangeObject extends pulumi.dynamic.Resource {
  declare readonly guid: pulumi.Output<string>;
  declare readonly name: pulumi.Output<string>;
  declare readonly properties: pulumi.Output<Record<string, unknown>>;

  protected constructor(
    kind: ExchangeKind,
    name: string,
    args: ExchangeObjectArgs,
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      providers[kind],
      name,
      { connection: pulumi.secret(args.connection), name: args.name, properties: args.properties, guid: undefined },
      opts,
      "moat:exchange",
      kind,
    );
  }
}

export class InboundConnector extends ExchangeObject {
  constructor(name: string, args: ExchangeObjectArgs, opts?: pulumi.CustomResourceOptions) {
    super("InboundConnector", name, args, opts);
  }
}

export class OutboundConnector extends ExchangeObject {
  constructor(name: string, args: ExchangeObjectArgs, opts?: pulumi.CustomResourceOptions) {
    super("OutboundConnector", name, args, opts);
  }
}

export class TransportRule extends ExchangeObject {
  constructor(name: string, args: ExchangeObjectArgs, opts?: pulumi.CustomResourceOptions) {
    super("TransportRule", name, args, opts);
  }
}
