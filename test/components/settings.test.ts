import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SettingsError, defaultSmartHost, parseSettings } from "../../components/settings";
import { PROJECT_DIR, loadStack, loadStackFile, readStackFile } from "../../components/stack-config";

const TENANT = "11111111-2222-3333-4444-555555555555";
const minimal = {
  "moat:tenantId": TENANT,
  "moat:domains": [{ name: "acme.com" }],
  "moat:verification": "dynamic",
  "moat:gateway": { hosting: "external", egressIps: ["203.0.113.25"], inboundIp: "203.0.113.30" },
};

function problemsOf(config: Record<string, unknown>): string[] {
  try {
    parseSettings(config);
  } catch (error) {
    if (error instanceof SettingsError) return [...error.problems];
    throw error;
  }
  throw new Error("expected the config to be refused");
}

describe("stack settings (moat:*)", () => {
  it("accepts the example stack and fills the documented defaults", () => {
    const stack = loadStackFile(PROJECT_DIR, "example");
    expect(stack.settings.domains.map((d) => d.name)).toEqual(["northwind.example", "northwind-traders.example"]);
    expect(stack.settings.domains[1]?.cutover).toBe(false);
    expect(stack.settings.policy.maxMessageMb).toBe(36);
    expect(stack.users.length).toBeGreaterThan(5);
    expect(stack.users.find((u) => u.address === "finance@northwind.example")?.aliases).toContain(
      "invoices@northwind.example",
    );
  });

  it("accepts values as Pulumi hands them over (structured values as JSON text)", () => {
    const settings = parseSettings({
      "moat:tenantId": TENANT.toUpperCase(),
      "moat:domains": JSON.stringify([{ name: "Acme.COM", cutover: true }]),
      "moat:outbound": '{"enabled":true}',
      "moat:verification": "dynamic",
      "moat:gateway": '{"hosting":"external","egressIps":["203.0.113.25"],"inboundIp":"203.0.113.30"}',
      "azure-native:location": "westeurope",
    });
    expect(settings.tenantId).toBe(TENANT);
    expect(settings.domains[0]).toMatchObject({ name: "acme.com", cutover: true, mtaSts: "testing" });
    expect(settings.outbound.enabled).toBe(true);
    expect(settings.policy.spam).toBe("quarantine");
  });

  it("names the key path and the problem", () => {
    expect(problemsOf({ ...minimal, "moat:domains": [{ name: "acme" }] })).toEqual([
      'moat:domains[0].name: "acme" is not a domain name',
    ]);
    expect(problemsOf({ ...minimal, "moat:tenantId": "acme" })).toEqual(['moat:tenantId: "acme" is not a GUID']);
    expect(problemsOf({ "moat:domains": [{ name: "acme.com" }] })).toEqual(["moat:tenantId: required"]);
    expect(problemsOf({ ...minimal, "moat:domains": [] })).toEqual(["moat:domains: at least one domain is required"]);
    expect(problemsOf({ ...minimal, "moat:policy": { spam: "bin" } })[0]).toMatch(
      /^moat:policy\.spam: .*"deliver"\|"quarantine"\|"delete"\|"reject"/,
    );
    expect(problemsOf({ ...minimal, "moat:relays": [{ name: "crm", ips: ["10.0.0.0/33"] }] })).toEqual([
      'moat:relays[0].ips[0]: "10.0.0.0/33" is not an IPv4 address or a /24 to /32 range (what Exchange Online connectors accept)',
    ]);
    expect(problemsOf({ ...minimal, "moat:outbound": { enabled: true, smartHost: "relay.example" } })).toEqual([
      'moat:outbound.smartHost: "relay.example" is not host:port',
    ]);
    expect(problemsOf({ ...minimal, "moat:domains": [{ name: "acme.com", dmarc: "p=none" }] })).toEqual([
      'moat:domains[0].dmarc: a DMARC record starts with "v=DMARC1;"',
    ]);
  });

  it("refuses unknown keys at every level instead of ignoring them", () => {
    expect(problemsOf({ ...minimal, "moat:polcy": { spam: "deliver" } })[0]).toMatch(
      /^moat:polcy: unknown key \(the moat: keys are tenantId, domains/,
    );
    expect(problemsOf({ ...minimal, "moat:domains": [{ name: "acme.com", cutovr: true }] })).toEqual([
      "moat:domains[0].cutovr: unknown key",
    ]);
    expect(problemsOf({ ...minimal, "moat:policy": { spam: "deliver", virus: "reject" } })).toEqual([
      "moat:policy.virus: unknown key",
    ]);
  });

  it("reports every problem at once, including cross-field ones", () => {
    const problems = problemsOf({
      "moat:tenantId": "nope",
      "moat:domains": [{ name: "acme.com" }, { name: "ACME.com" }],
      "moat:verification": "dynamic",
      "moat:gateway": minimal["moat:gateway"],
      "moat:exchange": { lockDown: "certificate" },
    });
    expect(problems).toEqual([
      'moat:tenantId: "nope" is not a GUID',
      "moat:domains[1].name: acme.com is already declared as domains[0]",
      "moat:exchange.certificateName: required while moat:exchange.lockDown is certificate (the subject name of the gateway's TLS certificate)",
    ]);
    expect(problemsOf({ ...minimal, "moat:gateway": { hosting: "external", cpu: 2 } })).toEqual([
      "moat:gateway.egressIps: required with hosting external: Exchange Online must accept mail only from the gateway's egress IPs",
      "moat:gateway.inboundIp: required with hosting external (the gateway host's A record)",
      "moat:gateway.cpu: set only with hosting azure; an external gateway has the CPUs of the host it runs on",
    ]);
    expect(
      problemsOf({
        ...minimal,
        "moat:gateway": { hosting: "external", egressIps: ["198.51.0.0/16"], inboundIp: "203.0.113.30" },
      }),
    ).toEqual([
      'moat:gateway.egressIps[0]: "198.51.0.0/16" is not an IPv4 address or a /24 to /32 range (what Exchange Online connectors accept)',
    ]);
  });

  it("on Azure, refuses to deploy a gateway that could not deliver on port 25, and IPs Azure assigns", () => {
    expect(problemsOf({ ...minimal, "moat:gateway": { egressIps: ["203.0.113.25"] } })).toEqual([
      "moat:gateway.egressIps: set only with hosting external; the Azure hosting creates the gateway's egress IP",
      "moat:gateway.image: required with hosting azure: the gateway image built from the repository's Dockerfile (e.g. ghcr.io/msp/moat-gateway:1.0.0)",
      "moat:gateway.port25Unblocked: Azure blocks outbound TCP 25 on most subscriptions, and the gateway delivers to Exchange Online on port 25; set it to true only for a subscription where port 25 is unblocked (Enterprise Agreement or MCA-E), or use hosting external",
    ]);
  });

  it("gives the Azure gateway whole vCPUs within what a Container Apps replica holds beside rspamd and clamd", () => {
    const azure = { image: "ghcr.io/x/moat:1", port25Unblocked: true };
    expect(parseSettings({ ...minimal, "moat:gateway": azure }).gateway.cpu).toBeUndefined(); // 1 in the hosting
    expect(parseSettings({ ...minimal, "moat:gateway": { ...azure, cpu: 3 } }).gateway.cpu).toBe(3);
    for (const cpu of [0, 1.5, 4, "2"])
      expect(problemsOf({ ...minimal, "moat:gateway": { ...azure, cpu } })).toEqual([
        `moat:gateway.cpu: ${JSON.stringify(cpu)} is not 1, 2 or 3 (whole vCPUs for the gateway container; with rspamd and clamd beside it a Container Apps replica holds at most 4)`,
      ]);
  });

  it("refuses a moat: value stored as a Pulumi secret", () => {
    expect(problemsOf({ ...minimal, "moat:smartHost": { secure: "AAABAx..." } })).toEqual([
      "moat:smartHost: must not be a secret; it is not sensitive and the gateway needs it in clear",
    ]);
  });

  it("derives Exchange Online's smart host name from the first domain", () => {
    expect(defaultSmartHost("my-company.co.uk")).toBe("my-company-co-uk.mail.protection.outlook.com");
    expect(parseSettings(minimal).smartHost).toBeUndefined();
  });
});

describe("loading a stack with its files", () => {
  function project(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), "moat-stack-"));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return dir;
  }
  const config = {
    "moat:tenantId": TENANT,
    "moat:domains": [{ name: "acme.com" }],
    "moat:users": "stacks/acme/users.csv",
    "moat:gateway": { hosting: "external", egressIps: ["203.0.113.25"], inboundIp: "203.0.113.30" },
  };

  it("reads the users CSV relative to the project", () => {
    const dir = project({ "stacks/acme/users.csv": 'address,displayName,aliases\njo@acme.com,Jo,"j@acme.com"\n' });
    expect(loadStack("acme", config, dir).users).toEqual([
      { address: "jo@acme.com", displayName: "Jo", aliases: ["j@acme.com"] },
    ]);
  });

  it("names the users file line and column of every bad line", () => {
    const dir = project({
      "stacks/acme/users.csv":
        "address,displayName,aliases\njo@acme.com,Jo,\nnot-an-address,X,\nann@other.com,Ann,\nbo@acme.com,Bo,jo@acme.com\n",
    });
    expect(() => loadStack("acme", config, dir)).toThrow(SettingsError);
    try {
      loadStack("acme", config, dir);
    } catch (error) {
      expect((error as SettingsError).problems).toEqual([
        'moat:users: stacks/acme/users.csv: line 3, column 1 (address): "not-an-address" is not an e-mail address',
        "moat:users: stacks/acme/users.csv: line 4, column 1 (address): ann@other.com is not in one of the stack's domains (acme.com)",
        "moat:users: stacks/acme/users.csv: line 5, column 3 (aliases): jo@acme.com is already listed on line 2",
      ]);
    }
  });

  it("takes a stack without a users file (Entra ID sync is the directory), and requires named files to exist", () => {
    const dir = project({});
    const { "moat:users": _users, ...withoutUsers } = config;
    expect(loadStack("acme", withoutUsers, dir).users).toEqual([]);
    expect(() => loadStack("acme", { ...config, "moat:rules": "stacks/acme/rules.csv" }, dir)).toThrow(
      /moat:users: stacks\/acme\/users.csv: no such file\n.*moat:rules: stacks\/acme\/rules.csv: no such file/,
    );
    expect(() => loadStack("acme", { ...config, "moat:users": "../../etc/passwd.csv" }, dir)).toThrow(/inside it/);
  });

  it("reads stack files as YAML and names a missing stack", () => {
    expect(readStackFile(PROJECT_DIR, "example")["moat:verification"]).toBe("static");
    expect(() => readStackFile(PROJECT_DIR, "nosuch")).toThrow(/Pulumi\.nosuch\.yaml: no such stack file/);
  });
});
