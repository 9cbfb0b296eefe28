/** The Pulumi program under mocks (run as `pulumi up` runs it), for the example stack. */
import { beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../gateway/config";
import { FAKE_CLIENT_ID, FAKE_SECRET, type ProgramRun, exampleConfig, runProgram } from "../helpers/pulumi-mocks";

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
    expect(config.delivery).toMatchObject({ smartHost: { host: "northwind-example.mail.protection.outlook.com", port: 25 }, tls: "required" });
    expect(config.smtp).toMatchObject({ listen: { host: "0.0.0.0", port: 25 }, hostname: "mx.northwind.example" });
    expect(config.directory.users.find((u) => u.address === "sales@northwind.example")?.aliases).toContain("orders@northwind.example");
    expect(config.policy.maxMessageBytes).toBe(36 * 1024 * 1024);
    expect(config.graph).toEqual({
      clientId: FAKE_CLIENT_ID,
      clientSecret: FAKE_SECRET,
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
    expect(run.outputs.egressIps?.value).toEqual(["203.0.113.25", "203.0.113.26"]);
  });

  it("declares the gateway's Entra app with a secret credential and no Exchange permission", () => {
    const app = run.registered.find((r) => r.name === "gateway-app");
    expect(app?.type).toBe("azuread:index/application:Application");
    expect(app?.inputs).toMatchObject({ displayName: "Moat gateway (example)", signInAudience: "AzureADMyOrg" });
    expect(app?.inputs.requiredResourceAccesses).toBeUndefined();
    expect(run.registered.map((r) => r.type)).toEqual(expect.arrayContaining(["azuread:index/servicePrincipal:ServicePrincipal", "azuread:index/applicationPassword:ApplicationPassword"]));
  });
});

describe("the program with a bad stack config", () => {
  it("fails naming every key path and registers nothing", async () => {
    const bad = await runProgram("broken", exampleConfig({ "moat:domains": [{ name: "northwind" }], "moat:verfication": "static" }));
    expect(bad.error).toContain('moat:domains[0].name: "northwind" is not a domain name');
    expect(bad.error).toContain("moat:verfication: unknown key");
    expect(bad.registered).toEqual([]);
  });

  it("fails before registering anything when a coexistence rule name would be too long", async () => {
    const domain = `${"a".repeat(30)}.${"b".repeat(20)}.example`;
    const bad = await runProgram("broken", exampleConfig({ "moat:coexistence": [{ domain, smartHosts: ["aspmx.l.google.com"] }] }));
    expect(bad.error).toContain(`moat:coexistence[0].domain: ${domain} makes the transport rule name longer than Exchange Online's 64 characters`);
    expect(bad.registered).toEqual([]);
  });
});
