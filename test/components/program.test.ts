/** The Pulumi program under mocks, for the example stack. Imported after the mocks are set. */
import { beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../gateway/config";
import { FAKE_CLIENT_ID, FAKE_SECRET, type RegisteredResource, isSecretOutput, mockStack, outputValue } from "../helpers/pulumi-mocks";

let registered: RegisteredResource[];
let program: typeof import("../../index.js");

beforeAll(async () => {
  registered = await mockStack("example");
  program = await import("../../index.js");
});

describe("the program for the example stack", () => {
  it("exports a gatewayConfig the gateway's parser accepts", async () => {
    const config = parseGatewayConfig(await outputValue(program.gatewayConfig));
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

  it("the same JSON also parses wrapped the way `pulumi stack output --json` prints it", async () => {
    const document = await outputValue(program.gatewayConfig);
    const stackOutput = JSON.parse(JSON.stringify({ gatewayConfig: document, appClientId: FAKE_CLIENT_ID, mxHost: program.mxHost }));
    expect(parseGatewayConfig(stackOutput).customer).toBe("example");
  });

  it("keeps gatewayConfig secret because it holds the client secret", async () => {
    expect(await isSecretOutput(program.gatewayConfig)).toBe(true);
    expect(await isSecretOutput(program.appClientId)).toBe(false);
  });

  it("declares the gateway's Entra app with a secret credential", async () => {
    const types = registered.map((r) => r.type);
    expect(types).toEqual(
      expect.arrayContaining([
        "moat:entra:App",
        "azuread:index/application:Application",
        "azuread:index/servicePrincipal:ServicePrincipal",
        "azuread:index/applicationPassword:ApplicationPassword",
      ]),
    );
    const app = registered.find((r) => r.type === "azuread:index/application:Application");
    expect(app?.inputs).toMatchObject({ displayName: "Moat gateway (example)", signInAudience: "AzureADMyOrg" });
    expect(await outputValue(program.appClientId)).toBe(FAKE_CLIENT_ID);
    expect(program.smartHost).toBe("northwind-example.mail.protection.outlook.com");
    expect(program.mxHost).toBe("mx.northwind.example");
  });
});
