/** The Azure hosting a stack declares, under mocks; and hosting external. */
import { describe, expect, it } from "vitest";
import { mapSecrets } from "../../components/offline/mocks";
import {
  FAKE_SECRET,
  type RegisteredResource,
  SECRET_SIG,
  SECRET_SIG_KEY,
  exampleConfig,
  runProgram,
  unwrapSecrets,
} from "../helpers/pulumi-mocks";

/** Inputs as the resource receives them, secrets unwrapped. */
const withoutSecrets = (value: unknown) => mapSecrets(value, () => "[secret]");
const find = (registered: RegisteredResource[], type: string) =>
  unwrapSecrets(registered.find((r) => r.type === type)?.inputs) as Record<string, any> | undefined;

describe("hosting azure (the example stack)", () => {
  it("runs the gateway with rspamd and clamd beside it, SMTP on 25 and HTTP on 80, config from Key Vault", async () => {
    const { registered, error } = await runProgram("example");
    expect(error).toBeUndefined();
    const containerApp = find(registered, "azure-native:app:ContainerApp")!;
    expect(containerApp.configuration.ingress).toMatchObject({
      external: true,
      transport: "tcp",
      targetPort: 2525,
      exposedPort: 25,
      additionalPortMappings: [{ external: true, targetPort: 8080, exposedPort: 80 }],
    });
    expect(containerApp.configuration.secrets).toEqual([
      {
        name: "moat-config",
        keyVaultUrl: "https://vault.vault.azure.net/secrets/gateway-config",
        identity: "hosting-identity-id",
      },
    ]);
    const [gateway, rspamd, clamd] = containerApp.template.containers;
    expect(gateway.image).toBe("ghcr.io/example-msp/moat-gateway:0.1.0");
    expect(gateway.env).toContainEqual({ name: "MOAT_CONFIG", secretRef: "moat-config" });
    expect(gateway.volumeMounts).toEqual([{ volumeName: "data", mountPath: "/data" }]);
    expect(gateway.probes[0]).toMatchObject({ type: "Liveness", httpGet: { path: "/healthz", port: 8080 } });
    expect([rspamd.name, rspamd.image, clamd.name, clamd.image]).toEqual([
      "rspamd",
      "rspamd/rspamd:3.10",
      "clamd",
      "clamav/clamav:1.4",
    ]);
    expect(containerApp.template.scale).toEqual({ minReplicas: 1, maxReplicas: 1 });
    // One vCPU and 2 GiB for the gateway unless moat:gateway.cpu says more.
    expect(containerApp.template.containers.map((c: any) => c.resources)).toEqual([
      { cpu: 1, memory: "2Gi" },
      { cpu: 0.5, memory: "1Gi" },
      { cpu: 0.5, memory: "1Gi" },
    ]);
  });

  it("gives the gateway the vCPUs moat:gateway.cpu names, 2 GiB each, within a Consumption replica's 4 vCPUs and 8 GiB", async () => {
    const gateway = { image: "ghcr.io/x/moat:1", port25Unblocked: true, hostname: "mx.northwind.example" };
    for (const cpu of [2, 3]) {
      const { registered, error } = await runProgram(
        `cpu-${cpu}`,
        exampleConfig({ "moat:gateway": { ...gateway, cpu } }),
      );
      expect(error).toBeUndefined();
      const containers: { resources: { cpu: number; memory: string } }[] = find(
        registered,
        "azure-native:app:ContainerApp",
      )!.template.containers;
      expect(containers[0]!.resources).toEqual({ cpu, memory: `${cpu * 2}Gi` });
      const total = containers.reduce((sum, c) => sum + c.resources.cpu, 0);
      const gib = containers.reduce((sum, c) => sum + Number.parseFloat(c.resources.memory), 0);
      expect([total, gib]).toEqual([cpu + 1, (cpu + 1) * 2]);
      expect(total).toBeLessThanOrEqual(4);
    }
  });

  it("gives the environment's subnet a NAT gateway with a static Standard public IP (the stable egress)", async () => {
    const { registered } = await runProgram("example");
    expect(find(registered, "azure-native:network:PublicIPAddress")).toMatchObject({
      sku: { name: "Standard" },
      publicIPAllocationMethod: "Static",
      location: "westeurope",
    });
    expect(find(registered, "azure-native:network:NatGateway")).toMatchObject({
      publicIpAddresses: [{ id: "hosting-egress-ip-id" }],
    });
    expect(find(registered, "azure-native:network:Subnet")).toMatchObject({
      natGateway: { id: "hosting-nat-id" },
      delegations: [{ name: "container-apps", serviceName: "Microsoft.App/environments" }],
    });
    expect(find(registered, "azure-native:app:ManagedEnvironment")).toMatchObject({
      vnetConfiguration: { infrastructureSubnetId: "hosting-environment-subnet-id", internal: false },
      appLogsConfiguration: {
        destination: "log-analytics",
        logAnalyticsConfiguration: { customerId: "log-analytics-customer-id" },
      },
    });
  });

  it("keeps the gatewayConfig in Key Vault as a secret, readable by the app's identity only", async () => {
    const { registered } = await runProgram("example");
    const raw = registered.find((r) => r.type === "azure-native:keyvault:Secret")?.inputs as Record<string, any>;
    expect(raw.properties[SECRET_SIG_KEY]).toBe(SECRET_SIG);
    const secret = find(registered, "azure-native:keyvault:Secret")!;
    expect(secret.secretName).toBe("gateway-config");
    expect(JSON.parse(secret.properties.value).customer).toBe("example");
    expect(find(registered, "azure-native:keyvault:Vault")).toMatchObject({
      properties: { enableRbacAuthorization: true, tenantId: "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f" },
    });
    expect(find(registered, "azure-native:authorization:RoleAssignment")).toMatchObject({
      roleDefinitionId:
        "/subscriptions/00000000-aaaa-bbbb-cccc-000000000000/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
      scope: "hosting-vault-id",
    });
    // The secret never appears in a plain input anywhere.
    for (const resource of registered) {
      const plain = JSON.stringify(withoutSecrets(resource.inputs));
      expect(plain.includes(FAKE_SECRET) || plain.includes("PRIVATE KEY"), resource.name).toBe(false);
    }
  });
});

describe("hosting external", () => {
  it("declares no Azure resource and takes the addresses from the config", async () => {
    const { registered, outputs, error } = await runProgram(
      "external",
      exampleConfig({
        "moat:gateway": {
          hosting: "external",
          hostname: "mx.northwind.example",
          egressIps: ["198.51.100.25"],
          inboundIp: "198.51.100.26",
        },
      }),
    );
    expect(error).toBeUndefined();
    expect(registered.filter((r) => r.type.startsWith("azure-native:"))).toEqual([]);
    expect(outputs.egressIps?.value).toEqual(["198.51.100.25"]);
    expect(outputs.inboundIps?.value).toEqual(["198.51.100.26"]);
    expect(registered.find((r) => r.name === "dns-northwind-example-gateway-a")?.inputs.content).toBe("198.51.100.26");
  });
});

describe("STARTTLS certificate from Key Vault", () => {
  it("mounts the Key Vault certificate as a PEM file and points the gateway's STARTTLS at it", async () => {
    const gateway = {
      image: "ghcr.io/x/moat:1",
      port25Unblocked: true,
      hostname: "mx.northwind.example",
      tlsCertificate: "mx-northwind-example",
    };
    const { registered, outputs, error } = await runProgram("tls", exampleConfig({ "moat:gateway": gateway }));
    expect(error).toBeUndefined();
    const containerApp = find(registered, "azure-native:app:ContainerApp")!;
    expect(containerApp.configuration.secrets).toContainEqual({
      name: "smtp-tls",
      keyVaultUrl: "https://hosting-vault.vault.azure.net/secrets/mx-northwind-example",
      identity: "hosting-identity-id",
    });
    expect(containerApp.template.volumes).toContainEqual({
      name: "smtp-tls",
      storageType: "Secret",
      secrets: [{ secretRef: "smtp-tls", path: "tls.pem" }],
    });
    expect(containerApp.template.containers[0].volumeMounts).toContainEqual({
      volumeName: "smtp-tls",
      mountPath: "/run/moat-tls",
    });
    const config = outputs.gatewayConfig?.value as { smtp: { tls?: unknown } };
    expect(config.smtp.tls).toEqual({ certFile: "/run/moat-tls/tls.pem", keyFile: "/run/moat-tls/tls.pem" });
  });

  it("refuses MTA-STS enforce on a cut-over domain when the gateway would offer no STARTTLS", async () => {
    const { error, registered } = await runProgram(
      "no-tls",
      exampleConfig({
        "moat:domains": [
          { name: "northwind.example", cutover: true, mtaSts: "enforce" },
          { name: "northwind-traders.example", cutover: false, mtaSts: "none" },
        ],
      }),
    );
    expect(error).toContain(
      "moat:domains[0].mtaSts: enforce needs the gateway to offer STARTTLS with a valid certificate for its host",
    );
    expect(registered).toEqual([]);
  });
});
