/** The Pulumi program under mocks (run as `pulumi up` runs it), for the example stack. */
import { beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../gateway/config";
import {
  FAKE_CERT_PEM,
  FAKE_CLIENT_ID,
  FAKE_EGRESS_IP,
  FAKE_GRAPH_SP,
  FAKE_INBOUND_IP,
  FAKE_KEY_PEM,
  FAKE_SECRET,
  FAKE_GROUP_MEMBER_READ_ALL_ROLE,
  FAKE_USER_READ_ALL_ROLE,
  type ProgramRun,
  exampleConfig,
  runProgram,
} from "../helpers/pulumi-mocks";

let run: ProgramRun;

beforeAll(async () => {
  run = await runProgram("example");
  expect(run.error).toBeUndefined();
});

describe("the program for the example stack", () => {
  it("exports a gatewayConfig the gateway's parser accepts", () => {
    const config = parseGatewayConfig(run.outputs.gatewayConfig?.value);
    expect(config.customer).toBe("example");
    expect(config.tenantId).toBe("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f");
    expect(config.domains.map((d) => d.name)).toEqual(["northwind.example", "northwind-traders.example"]);
    expect(config.delivery).toMatchObject({
      smartHost: { host: "northwind-example.mail.protection.outlook.com", port: 25 },
      tls: "required",
    });
    expect(config.smtp).toMatchObject({ listen: { host: "0.0.0.0", port: 2525 }, hostname: "mx.northwind.example" });
    expect(config.domains[0]).toEqual({
      name: "northwind.example",
      mtaSts: "testing",
      mxHosts: ["mx.northwind.example"],
    });
    expect(config.domains[1]).toEqual({
      name: "northwind-traders.example",
      mtaSts: "none",
      mxHosts: ["northwind-traders-example.mail.protection.outlook.com"],
    });
    expect(config.directory.users.find((u) => u.address === "sales@northwind.example")?.aliases).toContain(
      "orders@northwind.example",
    );
    expect(config.policy.maxMessageBytes).toBe(36 * 1024 * 1024);
    expect(config.graph).toEqual({
      clientId: FAKE_CLIENT_ID,
      credential: { certificatePem: FAKE_CERT_PEM, privateKeyPem: FAKE_KEY_PEM },
      endpoint: "https://graph.microsoft.com",
      authorityHost: "https://login.microsoftonline.com",
    });
  });

  it("the same JSON also parses wrapped the way `pulumi stack output --json` prints it", () => {
    const stackOutput = Object.fromEntries(Object.entries(run.outputs).map(([key, output]) => [key, output.value]));
    expect(parseGatewayConfig(JSON.parse(JSON.stringify(stackOutput))).customer).toBe("example");
  });

  it("keeps gatewayConfig secret because it holds the client secret, and the rest plain", () => {
    expect(run.outputs.gatewayConfig?.secret).toBe(true);
    expect(run.outputs.appClientId).toEqual({ value: FAKE_CLIENT_ID, secret: false });
    expect(run.outputs.mxHost?.value).toBe("mx.northwind.example");
    expect(run.outputs.smartHost?.value).toBe("northwind-example.mail.protection.outlook.com");
    expect(run.outputs.egressIps?.value).toEqual([FAKE_EGRESS_IP]);
    expect(run.outputs.inboundIps?.value).toEqual([FAKE_INBOUND_IP]);
  });

  it("gives the gateway's Entra app Graph User.Read.All and GroupMember.Read.All only, with consent and a certificate credential", () => {
    const app = run.registered.find(
      (r) => r.type === "azuread:index/application:Application" && r.name === "gateway-app",
    );
    expect(app?.inputs).toMatchObject({ displayName: "Moat gateway (example)", signInAudience: "AzureADMyOrg" });
    expect(app?.inputs.requiredResourceAccesses).toEqual([
      {
        resourceAppId: "00000003-0000-0000-c000-000000000000",
        resourceAccesses: [
          { id: FAKE_USER_READ_ALL_ROLE, type: "Role" },
          { id: FAKE_GROUP_MEMBER_READ_ALL_ROLE, type: "Role" },
        ],
      },
    ]);
    expect(run.registered.find((r) => r.name === "gateway-consent-user-read-all")?.inputs).toMatchObject({
      appRoleId: FAKE_USER_READ_ALL_ROLE,
      resourceObjectId: FAKE_GRAPH_SP,
      principalObjectId: "gateway-sp-object-id",
    });
    expect(run.registered.find((r) => r.name === "gateway-consent-groupmember-read-all")?.inputs).toMatchObject({
      appRoleId: FAKE_GROUP_MEMBER_READ_ALL_ROLE,
      resourceObjectId: FAKE_GRAPH_SP,
    });
    // azuread marks the certificate value secret: Pulumi's wire form of a secret.
    expect(run.registered.find((r) => r.name === "gateway-certificate-credential")?.inputs).toMatchObject({
      type: "AsymmetricX509Cert",
      value: { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: FAKE_CERT_PEM },
    });
    expect(run.registered.some((r) => r.name === "gateway-secret")).toBe(false);
  });

  it("with credential: secret, the gateway app gets a client secret instead", async () => {
    const secretRun = await runProgram(
      "secret",
      exampleConfig({
        "moat:gateway": {
          image: "ghcr.io/x/moat:1",
          port25Unblocked: true,
          credential: "secret",
          hostname: "mx.northwind.example",
        },
      }),
    );
    expect(secretRun.error).toBeUndefined();
    expect(parseGatewayConfig(secretRun.outputs.gatewayConfig?.value).graph?.credential).toEqual({
      clientSecret: FAKE_SECRET,
    });
    expect(secretRun.registered.some((r) => r.type === "tls:index/privateKey:PrivateKey")).toBe(false);
  });
});

describe("the program with a bad stack config", () => {
  it("fails naming every key path and registers nothing", async () => {
    const bad = await runProgram(
      "broken",
      exampleConfig({ "moat:domains": [{ name: "northwind" }], "moat:verfication": "static" }),
    );
    expect(bad.error).toContain('moat:domains[0].name: "northwind" is not a domain name');
    expect(bad.error).toContain("moat:verfication: unknown key");
    expect(bad.registered).toEqual([]);
  });

  it("fails before registering anything when a coexistence rule name would be too long", async () => {
    const domain = `${"a".repeat(30)}.${"b".repeat(20)}.example`;
    const bad = await runProgram(
      "broken",
      exampleConfig({ "moat:coexistence": [{ domain, smartHosts: ["aspmx.l.google.com"] }] }),
    );
    expect(bad.error).toContain(
      `moat:coexistence[0].domain: ${domain} makes the transport rule name longer than Exchange Online's 64 characters`,
    );
    expect(bad.registered).toEqual([]);
  });
});
