/**
 * The dynamic providers over real HTTP against the strict double: the lifecycle Pulumi
 * drives (check, create, read, diff, update, delete), drift, idempotence, import by name,
 * and the errors an admin sees.
 */
import type * as pulumi from "@pulumi/pulumi";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExchangeKind } from "../../../components/exchange/kinds";
import { type ExchangeObjectState, exchangeProvider } from "../../../components/exchange/provider";
import { ExchangeAdminDouble } from "../../doubles/exchange-admin";

const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const CLIENT_ID = "0a0b0c0d-1111-2222-3333-444455556666";
const SECRET = "test-secret-not-real";

let double: ExchangeAdminDouble;
const options = { sleep: async () => undefined, authPropagationMs: 0 };
const connection = () => ({
  tenantId: TENANT,
  clientId: CLIENT_ID,
  clientSecret: SECRET,
  authorityHost: double.url,
  endpoint: double.url,
});
const state = (name: string, properties: Record<string, unknown>): ExchangeObjectState => ({
  connection: connection(),
  name,
  properties,
});

/** Drives a provider the way the Pulumi engine does for `pulumi up` and `pulumi refresh`. */
function engine(kind: ExchangeKind) {
  const provider = exchangeProvider(kind, options) as Required<pulumi.dynamic.ResourceProvider>;
  let id = "";
  let outs: ExchangeObjectState | undefined;
  return {
    async up(desired: ExchangeObjectState) {
      const checked = await provider.check(outs ?? desired, desired);
      if (checked.failures?.length)
        throw new Error(checked.failures.map((f) => `${f.property}: ${f.reason}`).join("; "));
      if (!outs) {
        const created = await provider.create(desired);
        id = created.id;
        outs = created.outs as ExchangeObjectState;
        return "created";
      }
      const diff = await provider.diff(id, outs, desired);
      if (!diff.changes) return "unchanged";
      outs = (await provider.update(id, outs, desired)).outs as ExchangeObjectState;
      return "updated";
    },
    async refresh() {
      const read = await provider.read(id, outs);
      outs = read.id ? (read.props as ExchangeObjectState) : undefined;
      return read;
    },
    async destroy() {
      await provider.delete(id, outs);
    },
    get id() {
      return id;
    },
    provider,
  };
}

beforeEach(async () => {
  double = await new ExchangeAdminDouble({ tenantId: TENANT, clientId: CLIENT_ID, clientSecret: SECRET }).start();
});
afterEach(async () => double.close());

const lockDown = {
  ConnectorType: "Partner",
  SenderDomains: ["*"],
  SenderIPAddresses: ["203.0.113.10", "203.0.113.11"],
  RequireTls: true,
  RestrictDomainsToIPAddresses: true,
  EFSkipIPs: ["203.0.113.10", "203.0.113.11"],
};

describe("InboundConnector", () => {
  it("create -> read -> update -> rename -> disable -> delete, by Guid", async () => {
    const connector = engine("InboundConnector");
    expect(await connector.up(state("Moat lock-down", lockDown))).toBe("created");
    const live = double.objects.InboundConnector[0];
    expect(connector.id).toBe(live?.Guid);
    expect(live).toMatchObject({ Name: "Moat lock-down", SenderDomains: ["smtp:*;1"], RequireTls: true });

    expect(await connector.up(state("Moat lock-down", { ...lockDown, SenderIPAddresses: ["203.0.113.10"] }))).toBe(
      "updated",
    );
    expect(live?.SenderIPAddresses).toEqual(["203.0.113.10"]);
    expect(
      await connector.up(state("Moat gateway lock-down", { ...lockDown, SenderIPAddresses: ["203.0.113.10"] })),
    ).toBe("updated");
    expect(live?.Name).toBe("Moat gateway lock-down");
    expect(
      await connector.up(
        state("Moat gateway lock-down", { ...lockDown, SenderIPAddresses: ["203.0.113.10"], Enabled: false }),
      ),
    ).toBe("updated");
    expect(live?.Enabled).toBe(false);
    const sets = double.calls.filter((c) => c.cmdlet === "Set-InboundConnector");
    expect(sets.every((c) => c.parameters.Identity === connector.id)).toBe(true);
    expect(sets[1]?.parameters).toEqual({ Identity: connector.id, Name: "Moat gateway lock-down" });

    await connector.destroy();
    expect(double.objects.InboundConnector).toEqual([]);
    await connector.destroy(); // already gone: not an error
  });

  it("a re-apply with nothing changed calls nothing that changes anything", async () => {
    const connector = engine("InboundConnector");
    await connector.up(state("Moat", lockDown));
    const before = double.mutatingCalls().length;
    await connector.refresh();
    // the same declaration, written differently: order, case, and what Get- returns
    expect(
      await connector.up(
        state("Moat", {
          ...lockDown,
          SenderIPAddresses: ["203.0.113.11", "203.0.113.10"],
          SenderDomains: ["*"],
          ConnectorType: "partner",
        }),
      ),
    ).toBe("unchanged");
    expect(double.mutatingCalls().length).toBe(before);
  });

  it("refresh detects an out-of-band change and the next up puts it back", async () => {
    const connector = engine("InboundConnector");
    await connector.up(state("Moat", lockDown));
    double.edit("InboundConnector", "Moat", {
      RequireTls: false,
      EFSkipIPs: [],
      Comment: "changed in the admin center",
    });
    const read = await connector.refresh();
    expect((read.props as ExchangeObjectState).properties).toMatchObject({ RequireTls: false, EFSkipIPs: [] });
    expect(await connector.up(state("Moat", lockDown))).toBe("updated");
    expect(double.calls.at(-1)).toMatchObject({
      cmdlet: "Set-InboundConnector",
      parameters: { RequireTls: true, EFSkipIPs: lockDown.EFSkipIPs },
    });
    expect(double.objects.InboundConnector[0]?.Comment).toBe("changed in the admin center"); // undeclared: left alone
  });

  it("a connector deleted out of band reads as gone", async () => {
    const connector = engine("InboundConnector");
    await connector.up(state("Moat", lockDown));
    double.objects.InboundConnector.length = 0;
    expect((await connector.refresh()).id).toBe("");
  });

  it("imports an existing connector by name and answers with its Guid", async () => {
    await engine("InboundConnector").up(state("Existing", lockDown));
    const provider = exchangeProvider("InboundConnector", options) as Required<pulumi.dynamic.ResourceProvider>;
    const read = await provider.read("Existing", { connection: connection() } as ExchangeObjectState);
    expect(read.id).toBe(double.objects.InboundConnector[0]?.Guid);
    expect((read.props as ExchangeObjectState).properties).toMatchObject({
      SenderDomains: ["*"],
      RequireTls: true,
      RestrictDomainsToIPAddresses: true,
    });
  });

  it("validates before calling: IPv6, ranges wider than /24, restrictions on OnPremises", async () => {
    const { failures } = await exchangeProvider("InboundConnector", options).check!(
      {} as ExchangeObjectState,
      state("Relay", {
        ConnectorType: "OnPremises",
        SenderDomains: ["*"],
        SenderIPAddresses: ["2001:db8::1", "198.51.0.0/16"],
        RequireTls: true,
      }),
    );
    expect(failures).toEqual([
      { property: "properties.SenderIPAddresses", reason: '"2001:db8::1": only IPv4 addresses or ranges are allowed' },
      {
        property: "properties.SenderIPAddresses",
        reason: '"198.51.0.0/16": a range must be /24 to /32 (Exchange Online refuses wider ranges)',
      },
      {
        property: "properties.RequireTls",
        reason: "only a Partner connector can require TLS or restrict by IP or certificate",
      },
    ]);
    expect(double.calls).toEqual([]);
  });

  it("a parameter the service rejects fails with its exception and message", async () => {
    const provider = exchangeProvider("InboundConnector", options) as Required<pulumi.dynamic.ResourceProvider>;
    await engine("InboundConnector").up(state("Taken", lockDown));
    await expect(provider.create(state("Taken", lockDown))).rejects.toThrow(
      "New-InboundConnector: Microsoft.Exchange.Management.Tasks.ConnectorAlreadyExistsException: A InboundConnector with the name 'Taken' already exists.",
    );
  });

  it("recovers from throttling, a transient 503, and replication lag after create", async () => {
    double.throttle = { remaining: 2, retryAfterSeconds: 3 };
    double.unavailable = 1;
    double.replicationLagReads = 2;
    const connector = engine("InboundConnector");
    expect(await connector.up(state("Moat", lockDown))).toBe("created");
    expect(double.calls.filter((c) => c.cmdlet === "Get-InboundConnector")).toHaveLength(3);
  });
});

describe("OutboundConnector", () => {
  const toGateway = {
    ConnectorType: "Partner",
    UseMXRecord: false,
    SmartHosts: ["mx.northwind.example"],
    TlsSettings: "DomainValidation",
    TlsDomain: "mx.northwind.example",
    IsTransportRuleScoped: true,
    RecipientDomains: ["*"],
  };

  it("create -> update -> rename -> disable -> delete", async () => {
    const connector = engine("OutboundConnector");
    expect(await connector.up(state("Moat outbound", toGateway))).toBe("created");
    const read = await connector.refresh();
    expect(read.id).toBe(double.objects.OutboundConnector[0]?.Guid);
    expect((read.props as ExchangeObjectState).properties).toMatchObject({
      UseMXRecord: false,
      SmartHosts: ["mx.northwind.example"],
      TlsSettings: "DomainValidation",
      IsTransportRuleScoped: true,
    });
    expect(await connector.up(state("Moat outbound", { ...toGateway, SmartHosts: ["mx2.northwind.example"] }))).toBe(
      "updated",
    );
    expect(
      await connector.up(
        state("Moat to gateway", { ...toGateway, SmartHosts: ["mx2.northwind.example"], Enabled: false }),
      ),
    ).toBe("updated");
    expect(double.objects.OutboundConnector[0]).toMatchObject({
      Name: "Moat to gateway",
      SmartHosts: ["mx2.northwind.example"],
      Enabled: false,
    });
    await connector.destroy();
    expect(double.objects.OutboundConnector).toEqual([]);
  });

  it("requires SmartHosts when UseMXRecord is false", async () => {
    const { failures } = await exchangeProvider("OutboundConnector", options).check!(
      {} as ExchangeObjectState,
      state("x", { UseMXRecord: false }),
    );
    expect(failures).toEqual([{ property: "properties.SmartHosts", reason: "required when UseMXRecord is false" }]);
  });
});

describe("TransportRule", () => {
  it("create -> update -> rename -> disable (Disable-TransportRule, never Set -Enabled) -> delete", async () => {
    await engine("OutboundConnector").up(
      state("Moat outbound", { UseMXRecord: false, SmartHosts: ["mx.northwind.example"], IsTransportRuleScoped: true }),
    );
    const rule = engine("TransportRule");
    const declared = {
      FromScope: "InOrganization",
      SentToScope: "NotInOrganization",
      RouteMessageOutboundConnector: "Moat outbound",
      ExceptIfHeaderContainsMessageHeader: "X-Moat-Loop",
      ExceptIfHeaderContainsWords: ["example"],
      Enabled: true,
    };
    expect(await rule.up(state("Moat: outbound via gateway", declared))).toBe("created");
    expect(double.objects.TransportRule[0]).toMatchObject({ State: "Enabled", FromScope: "InOrganization" });
    expect(((await rule.refresh()).props as ExchangeObjectState).properties).toMatchObject({
      Enabled: true,
      FromScope: "InOrganization",
      RouteMessageOutboundConnector: "Moat outbound",
    });
    expect(await rule.up(state("Moat: outbound via gateway", declared))).toBe("unchanged");
    expect(await rule.up(state("Moat: route outbound", { ...declared, Enabled: false }))).toBe("updated");
    expect(double.objects.TransportRule[0]).toMatchObject({ Name: "Moat: route outbound", State: "Disabled" });
    const mutations = double.mutatingCalls().map((c) => c.cmdlet);
    expect(mutations).toEqual([
      "New-OutboundConnector",
      "New-TransportRule",
      "Set-TransportRule",
      "Disable-TransportRule",
    ]);
    expect(double.calls.find((c) => c.cmdlet === "Set-TransportRule")?.parameters).not.toHaveProperty("Enabled");
    expect(await rule.up(state("Moat: route outbound", { ...declared, Enabled: true }))).toBe("updated");
    expect(double.objects.TransportRule[0]?.State).toBe("Enabled");
    await rule.destroy();
    expect(double.objects.TransportRule).toEqual([]);
  });

  it("sees a rule disabled in the admin center as drift and enables it again", async () => {
    const rule = engine("TransportRule");
    await rule.up(state("Moat: bypass", { SenderIpRanges: ["203.0.113.25"], SetSCL: -1, Enabled: true }));
    double.edit("TransportRule", "Moat: bypass", { State: "Disabled" });
    expect(((await rule.refresh()).props as ExchangeObjectState).properties).toMatchObject({ Enabled: false });
    expect(await rule.up(state("Moat: bypass", { SenderIpRanges: ["203.0.113.25"], SetSCL: -1, Enabled: true }))).toBe(
      "updated",
    );
    expect(double.calls.at(-1)?.cmdlet).toBe("Enable-TransportRule");
    expect(double.objects.TransportRule[0]?.State).toBe("Enabled");
  });

  it("refuses names over 64 characters and a Priority the service would reject", async () => {
    const provider = exchangeProvider("TransportRule", options) as Required<pulumi.dynamic.ResourceProvider>;
    const { failures } = await provider.check({} as ExchangeObjectState, state("x".repeat(65), { Priority: -1 }));
    expect(failures).toEqual([
      { property: "name", reason: "must be 1 to 64 characters, got 65" },
      { property: "properties.Priority", reason: "must be a whole number from 0" },
    ]);
    await expect(provider.create(state("Too far", { Priority: 3, SetSCL: -1 }))).rejects.toThrow(
      /System.ArgumentOutOfRangeException: The value of priority is out of range. Specify a value between 0 and 0./,
    );
  });
});
