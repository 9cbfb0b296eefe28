import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildGatewayConfig } from "../../components/gateway-document";
import { PROJECT_DIR, loadStackFile, readStackFile } from "../../components/stack-config";
import { GatewayConfigError, parseGatewayConfig } from "../../gateway/config";
import { resolveConfig } from "../../gateway/config-source";
import { LOCAL_HOSTING, embeddedDefaultConfig } from "../../gateway/default-config";
import { applyEnvOverrides } from "../../gateway/env";

const document = () => buildGatewayConfig(loadStackFile(PROJECT_DIR, "example"), LOCAL_HOSTING);

function problemsOf(json: unknown): string[] {
  try {
    parseGatewayConfig(json);
  } catch (error) {
    if (error instanceof GatewayConfigError) return [...error.problems];
    throw error;
  }
  throw new Error("expected the document to be refused");
}

describe("the gatewayConfig document", () => {
  it("parses the document alone and wrapped in stack outputs", () => {
    expect(parseGatewayConfig(document()).smtp.listen).toEqual({ host: "127.0.0.1", port: 2525 });
    expect(parseGatewayConfig({ gatewayConfig: document(), mxHost: "mx.northwind.example" }).customer).toBe("example");
  });

  it("refuses another version, unknown keys and bad values, naming the path", () => {
    expect(problemsOf({ ...document(), version: 2 })).toEqual([
      "gatewayConfig.version: this gateway reads gatewayConfig version 1, got 2",
    ]);
    const doc = document();
    expect(
      problemsOf({
        ...doc,
        delivery: { ...doc.delivery, smartHost: { host: "relay_host", port: 99999 }, tsl: "required" },
      }),
    ).toEqual([
      'gatewayConfig.delivery.smartHost.host: "relay_host" is not a host name or IP address',
      "gatewayConfig.delivery.smartHost.port: Too big: expected number to be <=65535",
      "gatewayConfig.delivery.tsl: unknown key",
    ]);
    expect(problemsOf({ ...doc, smtp: { ...doc.smtp, listen: "25" } })).toEqual([
      'gatewayConfig.smtp.listen: "25" is not host:port',
    ]);
    expect(problemsOf({ ...doc, filters: { ...doc.filters, scanThread: "yes" } })).toEqual([
      'gatewayConfig.filters.scanThread: "yes" is not true, false or "auto"',
    ]);
    expect(problemsOf({ ...doc, loopCpu: 1 })).toEqual(['gatewayConfig.loopCpu: 1 is not true, false or "auto"']);
    expect(parseGatewayConfig(doc).loopCpu).toBe("auto"); // absent: the default
  });

  it("explains a masked secret output", () => {
    expect(problemsOf({ gatewayConfig: "[secret]" })[0]).toMatch(/--show-secrets/);
  });

  it("the embedded default is the example stack with local hosting", () => {
    const raw = readStackFile(PROJECT_DIR, "example") as { "moat:domains": { name: string }[] };
    const embedded = parseGatewayConfig(embeddedDefaultConfig());
    expect(embedded.domains.map((d) => d.name)).toEqual(raw["moat:domains"].map((d) => d.name));
    expect(embedded.delivery.smartHost).toEqual({ host: "127.0.0.1", port: 2526 });
    expect(embedded.delivery.tls).toBe("allow-plain");
  });
});

describe("config sources and MOAT_* overrides", () => {
  it("prefers --config, then MOAT_CONFIG, then the embedded default", () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-config-"));
    const file = join(dir, "out.json");
    writeFileSync(file, JSON.stringify({ gatewayConfig: { ...document(), customer: "from-file" } }));
    const env = { MOAT_CONFIG: JSON.stringify({ ...document(), customer: "from-env" }) };
    expect(resolveConfig(file, env).config.customer).toBe("from-file");
    expect(resolveConfig(undefined, env)).toMatchObject({ origin: "env", config: { customer: "from-env" } });
    expect(resolveConfig(undefined, {}).origin).toBe("embedded");
    expect(() => resolveConfig(join(dir, "missing.json"), {})).toThrow(
      /--config .*missing.json: cannot read \(ENOENT\)/,
    );
    expect(() => resolveConfig(undefined, { MOAT_CONFIG: "{not json" })).toThrow(/MOAT_CONFIG: not JSON/);
  });

  it("applies overrides into a new object and names a malformed one", () => {
    const config = parseGatewayConfig(document());
    const { config: overridden, applied } = applyEnvOverrides(config, {
      MOAT_SMTP_LISTEN: "[::1]:0",
      MOAT_SMART_HOST: "relay.example:587",
      MOAT_DATA_DIR: "/var/lib/moat",
    });
    expect(applied).toEqual(["MOAT_SMTP_LISTEN", "MOAT_SMART_HOST", "MOAT_DATA_DIR"]);
    expect(overridden.smtp.listen).toEqual({ host: "::1", port: 0 });
    expect(overridden.delivery.smartHost).toEqual({ host: "relay.example", port: 587 });
    expect(config.smtp.listen.port).toBe(2525); // input untouched
    expect(() => applyEnvOverrides(config, { MOAT_HTTP_LISTEN: "8080" })).toThrow(
      /MOAT_HTTP_LISTEN: "8080" is not host:port/,
    );
    expect(() => applyEnvOverrides(config, { MOAT_SMART_HOST: "127.0.0.1:0" })).toThrow(
      /port 0 is not a smart host port/,
    );
  });
  it("takes DNS servers as IP addresses with or without a port, and names one that is not", () => {
    const config = parseGatewayConfig(document());
    const { config: overridden } = applyEnvOverrides(config, {
      MOAT_DNS_SERVERS: "192.0.2.53, 127.0.0.1:5353,[::1]:53, 2001:db8::53",
    });
    expect(overridden.dns.servers).toEqual(["192.0.2.53", "127.0.0.1:5353", "[::1]:53", "2001:db8::53"]);
    for (const bad of ["resolver.example", "resolver.example:53", "192.0.2.53:99999", "[resolver]:53"])
      expect(() => applyEnvOverrides(config, { MOAT_DNS_SERVERS: bad }), bad).toThrow(
        `MOAT_DNS_SERVERS: ${JSON.stringify(bad)} is not a DNS server address (IP or IP:port)`,
      );
    expect(problemsOf({ ...document(), dns: { servers: ["resolver.example:53"] } })).toEqual([
      expect.stringContaining(`"resolver.example:53" is not a DNS server address (IP or IP:port)`),
    ]);
  });

  it("points directory sync at another Graph endpoint and authority (national clouds, tests), over HTTPS only", () => {
    const withGraph = parseGatewayConfig({
      ...document(),
      graph: {
        clientId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        credential: { clientSecret: "s" },
        endpoint: "https://graph.microsoft.com",
        authorityHost: "https://login.microsoftonline.com",
      },
    });
    const { config: overridden, applied } = applyEnvOverrides(withGraph, {
      MOAT_GRAPH_ENDPOINT: "https://graph.microsoft.us/",
      MOAT_AUTHORITY_HOST: "https://login.microsoftonline.us",
    });
    expect(applied).toEqual(["MOAT_GRAPH_ENDPOINT", "MOAT_AUTHORITY_HOST"]);
    expect(overridden.graph).toMatchObject({
      endpoint: "https://graph.microsoft.us",
      authorityHost: "https://login.microsoftonline.us",
      credential: { clientSecret: "s" },
    });
    expect(() => applyEnvOverrides(withGraph, { MOAT_GRAPH_ENDPOINT: "http://graph.local" })).toThrow(
      /MOAT_GRAPH_ENDPOINT: "http:\/\/graph.local" must be https:\/\//,
    );
    expect(() => applyEnvOverrides(parseGatewayConfig(document()), { MOAT_AUTHORITY_HOST: "https://x" })).toThrow(
      /MOAT_AUTHORITY_HOST: the gatewayConfig has no graph section/,
    );
    expect(
      problemsOf({ ...document(), graph: { ...withGraph.graph, endpoint: "http://graph.microsoft.com" } }),
    ).toEqual([expect.stringMatching(/^gatewayConfig\.graph\.endpoint: /)]);
  });
});
