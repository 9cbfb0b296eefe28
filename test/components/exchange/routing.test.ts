/**
 * The Exchange Online mail flow a stack declares, under mocks: for the example stack and for
 * stacks with outbound, relays, coexistence, the SCL -1 alternative and certificate lock-down.
 */
import { describe, expect, it } from "vitest";
import {
  EXCHANGE_TYPES,
  FAKE_EGRESS_IP,
  FAKE_EXCHANGE_ADMIN_TEMPLATE,
  FAKE_EXCHANGE_CLIENT_ID,
  FAKE_EXCHANGE_SECRET,
  FAKE_EXCHANGE_SP,
  FAKE_MANAGE_AS_APP_ROLE,
  type RegisteredResource,
  byType,
  exampleConfig,
  runProgram,
} from "../../helpers/pulumi-mocks";

const EGRESS = [FAKE_EGRESS_IP];
const named = (registered: RegisteredResource[], name: string) => registered.find((r) => r.name === name);

describe("the example stack", () => {
  it("declares the lock-down connector with Enhanced Filtering, a relay connector, and nothing else", async () => {
    const { registered, error } = await runProgram("example");
    expect(error).toBeUndefined();
    expect(named(registered, "exchange-lockdown")?.inputs).toMatchObject({
      name: "Moat gateway lock-down",
      properties: {
        ConnectorType: "Partner",
        SenderDomains: ["*"],
        RequireTls: true,
        SenderIPAddresses: EGRESS,
        RestrictDomainsToIPAddresses: true,
        RestrictDomainsToCertificate: false,
        EFSkipLastIP: false,
        EFSkipIPs: EGRESS,
      },
    });
    expect(named(registered, "exchange-relay-helpdesk-app")?.inputs).toMatchObject({
      name: "Moat relay: helpdesk-app",
      properties: { ConnectorType: "OnPremises", SenderDomains: ["*"], SenderIPAddresses: ["198.51.100.0/24"] },
    });
    expect(byType(registered, EXCHANGE_TYPES.inbound)).toHaveLength(2);
    expect(byType(registered, EXCHANGE_TYPES.outbound)).toEqual([]);
    expect(byType(registered, EXCHANGE_TYPES.rule)).toEqual([]); // Enhanced Filtering: no SCL -1 rule
  });

  it("ships a serialized provider and the credentials of the provisioning app, never the gateway's", async () => {
    const { registered } = await runProgram("example");
    const exchangeObjects = [...byType(registered, EXCHANGE_TYPES.inbound)];
    expect(exchangeObjects.length).toBeGreaterThan(0);
    for (const resource of exchangeObjects) {
      expect(String(resource.inputs.__provider)).toMatch(/^exports\.handler = /);
      expect(String(resource.inputs.__provider)).not.toContain(FAKE_EXCHANGE_SECRET);
      // Pulumi's wire form of a secret value: the special signature key, then the value.
      expect(resource.inputs.connection).toEqual({
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
        value: {
          tenantId: "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
          clientId: FAKE_EXCHANGE_CLIENT_ID,
          clientSecret: FAKE_EXCHANGE_SECRET,
          authorityHost: "https://login.microsoftonline.com",
          endpoint: "https://outlook.office365.com",
        },
      });
    }
  });

  it("gives the provisioning app Exchange.ManageAsApp with admin consent and the Exchange Administrator role", async () => {
    const { registered } = await runProgram("example");
    expect(named(registered, "exchange-admin-app")?.inputs.requiredResourceAccesses).toEqual([
      {
        resourceAppId: "00000002-0000-0ff1-ce00-000000000000",
        resourceAccesses: [{ id: FAKE_MANAGE_AS_APP_ROLE, type: "Role" }],
      },
    ]);
    expect(named(registered, "exchange-admin-consent")?.inputs).toMatchObject({
      appRoleId: FAKE_MANAGE_AS_APP_ROLE,
      resourceObjectId: FAKE_EXCHANGE_SP,
      principalObjectId: "exchange-admin-sp-object-id",
    });
    expect(named(registered, "exchange-admin-exchange-admin-role")?.inputs).toMatchObject({
      displayName: "Exchange Administrator",
    });
    expect(named(registered, "exchange-admin-exchange-admin")?.inputs).toMatchObject({
      roleId: FAKE_EXCHANGE_ADMIN_TEMPLATE,
      principalObjectId: "exchange-admin-sp-object-id",
    });
  });
});

describe("other stacks", () => {
  it("outbound through the gateway: a rule-scoped connector with DomainValidation and the routing rule with a loop guard", async () => {
    const { registered, error } = await runProgram(
      "outbound",
      exampleConfig({ "moat:outbound": { enabled: true }, "moat:relays": [] }),
    );
    expect(error).toBeUndefined();
    expect(named(registered, "exchange-outbound-connector")?.inputs).toMatchObject({
      name: "Moat outbound via gateway",
      properties: {
        ConnectorType: "Partner",
        UseMXRecord: false,
        SmartHosts: ["mx.northwind.example"],
        TlsSettings: "DomainValidation",
        TlsDomain: "mx.northwind.example",
        IsTransportRuleScoped: true,
      },
    });
    expect(named(registered, "exchange-outbound-rule")?.inputs).toMatchObject({
      name: "Moat: route outbound mail via the gateway",
      properties: {
        FromScope: "InOrganization",
        SentToScope: "NotInOrganization",
        RouteMessageOutboundConnector: "Moat outbound via gateway",
        ExceptIfHeaderContainsMessageHeader: "X-Moat-Relayed",
        ExceptIfHeaderContainsWords: ["6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"],
        Enabled: true,
      },
    });
    expect(byType(registered, EXCHANGE_TYPES.inbound).map((r) => r.name)).toEqual(["exchange-lockdown"]);
  });

  it("relays and coexistence: one OnPremises connector per app, a connector and a forcing rule per domain", async () => {
    const { registered } = await runProgram(
      "split",
      exampleConfig({
        "moat:relays": [
          { name: "crm", ips: ["198.51.100.7"] },
          { name: "Scanner Floor 2", ips: ["198.51.100.64/26"] },
        ],
        "moat:coexistence": [{ domain: "aacn.org", smartHosts: ["aspmx.l.google.com", "alt1.aspmx.l.google.com"] }],
      }),
    );
    expect(named(registered, "exchange-relay-scanner-floor-2")?.inputs).toMatchObject({
      name: "Moat relay: Scanner Floor 2",
      properties: { ConnectorType: "OnPremises", SenderIPAddresses: ["198.51.100.64/26"] },
    });
    expect(named(registered, "exchange-relay-crm")).toBeDefined();
    expect(named(registered, "exchange-coexistence-aacn-org-connector")?.inputs).toMatchObject({
      name: "Moat coexistence: aacn.org",
      properties: {
        UseMXRecord: false,
        SmartHosts: ["aspmx.l.google.com", "alt1.aspmx.l.google.com"],
        IsTransportRuleScoped: true,
        TlsSettings: "CertificateValidation",
      },
    });
    expect(named(registered, "exchange-coexistence-aacn-org-rule")?.inputs).toMatchObject({
      name: "Moat: route aacn.org to coexistence",
      properties: {
        RecipientDomainIs: ["aacn.org"],
        RouteMessageOutboundConnector: "Moat coexistence: aacn.org",
        Enabled: true,
      },
    });
  });

  it("the SCL -1 rule instead of Enhanced Filtering, never both", async () => {
    const { registered } = await runProgram("scl", exampleConfig({ "moat:exchange": { filtering: "scl-bypass" } }));
    const lockDown = named(registered, "exchange-lockdown")?.inputs.properties as Record<string, unknown>;
    expect(lockDown).not.toHaveProperty("EFSkipIPs");
    expect(named(registered, "exchange-scl-bypass")?.inputs).toMatchObject({
      name: "Moat: bypass spam filtering for the gateway",
      properties: { SenderIpRanges: EGRESS, SetSCL: -1 },
    });
  });

  it("lock-down by the gateway's certificate name instead of its IPs", async () => {
    const { registered } = await runProgram(
      "cert",
      exampleConfig({ "moat:exchange": { lockDown: "certificate", certificateName: "mx.northwind.example" } }),
    );
    expect(named(registered, "exchange-lockdown")?.inputs.properties).toMatchObject({
      TlsSenderCertificateName: "mx.northwind.example",
      RestrictDomainsToCertificate: true,
      RestrictDomainsToIPAddresses: false,
    });
    expect(named(registered, "exchange-lockdown")?.inputs.properties).not.toHaveProperty("SenderIPAddresses");
  });

  it("manage: false declares no Exchange object and no provisioning identity", async () => {
    const { registered } = await runProgram("hands-off", exampleConfig({ "moat:exchange": { manage: false } }));
    expect(registered.filter((r) => r.type.includes("moat:exchange") || r.name.startsWith("exchange-"))).toEqual([]);
  });
});
