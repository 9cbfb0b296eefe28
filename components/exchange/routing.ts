/**
 * ExchangeRouting: the customer's Exchange Online mail flow (plan.ts) as resources. Each
 * planned object becomes an InboundConnector, OutboundConnector or TransportRule named
 * `${name}-${key}`; a rule that routes to a connector depends on it and names it by the
 * connector's live Name.
 */
import * as pulumi from "@pulumi/pulumi";
import type { ExchangeConnectionInput } from "./provider";
import { InboundConnector, OutboundConnector, TransportRule } from "./provider";
import { type RoutingInputs, planExchangeRouting } from "./plan";

export interface ExchangeRoutingArgs extends RoutingInputs {
  readonly connection: pulumi.Input<ExchangeConnectionInput>;
}

export class ExchangeRouting extends pulumi.ComponentResource {
  readonly objectNames: pulumi.Output<string[]>;

  constructor(name: string, args: ExchangeRoutingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("moat:exchange:Routing", name, {}, opts);
    const planned = planExchangeRouting(args);
    const connectors = new Map<string, OutboundConnector>();
    const created: (InboundConnector | OutboundConnector | TransportRule)[] = [];
    for (const object of planned) {
      const resourceName = `${name}-${object.key}`;
      const base = { connection: args.connection, name: object.name, properties: { ...object.properties } };
      if (object.kind === "InboundConnector") {
        created.push(new InboundConnector(resourceName, base, { parent: this }));
      } else if (object.kind === "OutboundConnector") {
        const connector = new OutboundConnector(resourceName, base, { parent: this });
        connectors.set(object.key, connector);
        created.push(connector);
      } else {
        const via = object.routesVia ? connectors.get(object.routesVia) : undefined;
        const properties = via ? { ...object.properties, RouteMessageOutboundConnector: via.name } : object.properties;
        created.push(
          new TransportRule(resourceName, { ...base, properties }, { parent: this, dependsOn: via ? [via] : [] }),
        );
      }
    }
    this.objectNames = pulumi.all(created.map((r) => r.name));
    this.registerOutputs({ objectNames: this.objectNames });
  }
}
