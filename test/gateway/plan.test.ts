/** `moat plan --stack NAME`, as a user runs it: offline, for review, secrets masked. */
import { describe, expect, it } from "vitest";
import { formatPlan } from "../../gateway/plan";
import { runCli } from "../helpers/gateway-process";

describe("moat plan", () => {
  it("lists every resource with its type, name and inputs, and masks secrets", async () => {
    const { code, stdout } = await runCli(["plan", "--stack", "example"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^stack example: \d+ resources$/m);
    expect(stdout).toContain("pulumi-nodejs:dynamic/moat:exchange:InboundConnector  exchange-lockdown");
    expect(stdout).toContain("cloudflare:index/dnsRecord:DnsRecord  dns-northwind-example-mx\n");
    expect(stdout).toContain("    content: mx.northwind.example\n");
    expect(stdout).toContain("    privateKeyPem: [secret]\n");
    expect(stdout).toContain("    connection: [secret]\n");
    expect(stdout).toContain("    gatewayConfig: [secret]\n");
    expect(stdout).not.toContain("__provider");
  });

  it("fails with the reason for a stack that does not exist", async () => {
    const { code, stdout } = await runCli(["plan", "--stack", "nosuch"]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/stack nosuch: [\s\S]*Pulumi\.nosuch\.yaml: no such stack file/);
  });

  it("masks a secret nested anywhere in inputs and outputs", () => {
    const secret = {
      "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
      value: "hunter2-very-secret",
    };
    const lines = formatPlan("x", {
      registered: [{ type: "t", name: "n", inputs: { deep: { list: [secret] } } }],
      outputs: {
        plain: { value: { nested: secret }, secret: false },
        whole: { value: "hunter2-very-secret", secret: true },
      },
    });
    expect(lines.join("\n")).not.toContain("hunter2");
    expect(lines).toContain('    deep: {"list":["[secret]"]}');
    expect(lines).toContain("    whole: [secret]");
  });
});
