/** Cloudflare DNS a stack declares, under mocks, and the pure record planning behind it. */
import { describe, expect, it } from "vitest";
import { mtaStsId, planDomainRecords, spfRecord } from "../../components/dns-records";
import { parseSettings } from "../../components/settings";
import { mtaStsPolicy } from "../../gateway/web/mta-sts";
import {
  FAKE_EGRESS_IP,
  FAKE_INBOUND_IP,
  FAKE_ZONE_ID,
  type RegisteredResource,
  exampleConfig,
  runProgram,
} from "../helpers/pulumi-mocks";

const DNS = "cloudflare:index/dnsRecord:DnsRecord";
const TRADERS = { name: "northwind-traders.example", cutover: false, mtaSts: "none" };
const record = (registered: RegisteredResource[], name: string) =>
  registered.find((r) => r.type === DNS && r.name === name)?.inputs;

describe("SPF", () => {
  const domain = (spf?: object) =>
    parseSettings({
      "moat:tenantId": "11111111-2222-3333-4444-555555555555",
      "moat:domains": [{ name: "acme.com", spf }],
      "moat:gateway": { hosting: "external", egressIps: ["203.0.113.25"], inboundIp: "203.0.113.30" },
    }).domains[0]!;

  it("merges Exchange Online's include, the gateway's egress IPs when outbound goes through it, and the extras", () => {
    expect(spfRecord(domain({ include: ["_spf.crm.example"], ip4: ["198.51.100.1"] }), ["203.0.113.25"], true)).toEqual(
      {
        text: "v=spf1 ip4:203.0.113.25 ip4:198.51.100.1 include:spf.protection.outlook.com include:_spf.crm.example -all",
        lookups: 2,
      },
    );
    expect(spfRecord(domain(), ["203.0.113.25"], false).text).toBe("v=spf1 include:spf.protection.outlook.com -all");
  });

  it("counts nested lookups of known includes: 10 passes, 11 is refused with the domain and the count", async () => {
    const nine = Array.from({ length: 9 }, (_, i) => `_spf${i}.vendor.example`);
    expect(spfRecord(domain({ include: nine }), [], false).lookups).toBe(10);
    expect(spfRecord(domain({ include: ["_spf.google.com"] }), [], false).lookups).toBe(5);
    const atTen = await runProgram(
      "ten",
      exampleConfig({
        "moat:domains": [{ name: "northwind.example", cutover: true, spf: { include: nine } }, TRADERS],
      }),
    );
    expect(atTen.error).toBeUndefined();
    const atEleven = await runProgram(
      "eleven",
      exampleConfig({
        "moat:domains": [
          { name: "northwind.example", cutover: true, spf: { include: [...nine, "_spf.more.example"] } },
          TRADERS,
        ],
      }),
    );
    expect(atEleven.error).toContain("moat:domains[0].spf: 11 DNS lookups, the limit is 10");
    expect(atEleven.registered).toEqual([]);
  });
});

describe("MTA-STS", () => {
  it("the TXT id changes exactly when the policy changes", () => {
    const testing = mtaStsPolicy("testing", ["mx.acme.com"]);
    expect(testing).toBe("version: STSv1\r\nmode: testing\r\nmx: mx.acme.com\r\nmax_age: 604800\r\n");
    expect(mtaStsId(testing)).toBe(mtaStsId(mtaStsPolicy("testing", ["mx.acme.com"])));
    expect(mtaStsId(testing)).not.toBe(mtaStsId(mtaStsPolicy("enforce", ["mx.acme.com"])));
    expect(mtaStsId(testing)).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("the example stack's DNS", () => {
  it("a cut-over domain: MX to the gateway, SPF, DMARC, MTA-STS, TLS-RPT, the gateway's A record", async () => {
    const { registered, error } = await runProgram("example");
    expect(error).toBeUndefined();
    const base = { zoneId: FAKE_ZONE_ID, proxied: false, comment: "Managed by Moat (stack example)" };
    expect(record(registered, "dns-northwind-example-mx")).toEqual({
      ...base,
      name: "northwind.example",
      type: "MX",
      content: "mx.northwind.example",
      priority: 10,
      ttl: 300,
    });
    expect(record(registered, "dns-northwind-example-spf")).toEqual({
      ...base,
      name: "northwind.example",
      type: "TXT",
      ttl: 3600,
      content: "v=spf1 ip4:203.0.113.10 include:spf.protection.outlook.com include:_spf.crm.example -all",
    });
    expect(record(registered, "dns-northwind-example-dmarc")).toMatchObject({
      name: "_dmarc.northwind.example",
      content: "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@northwind.example",
    });
    const policy = mtaStsPolicy("testing", ["mx.northwind.example"]);
    expect(record(registered, "dns-northwind-example-mta-sts")).toMatchObject({
      name: "_mta-sts.northwind.example",
      content: `v=STSv1; id=${mtaStsId(policy)}`,
    });
    expect(record(registered, "dns-northwind-example-mta-sts-host")).toMatchObject({
      name: "mta-sts.northwind.example",
      type: "CNAME",
      content: "mx.northwind.example",
      proxied: true,
      ttl: 1,
    });
    expect(record(registered, "dns-northwind-example-tls-rpt")).toMatchObject({
      name: "_smtp._tls.northwind.example",
      content: "v=TLSRPTv1; rua=mailto:tls-reports@northwind.example",
    });
    expect(record(registered, "dns-northwind-example-gateway-a")).toMatchObject({
      name: "mx.northwind.example",
      type: "A",
      content: FAKE_INBOUND_IP,
      proxied: false,
    });
  });

  it("a domain not cut over keeps its MX at Exchange Online (rollback is a config flip) and gets no MTA-STS with mtaSts none", async () => {
    const { registered } = await runProgram("example");
    expect(record(registered, "dns-northwind-traders-example-mx")).toMatchObject({
      content: "northwind-traders-example.mail.protection.outlook.com",
      priority: 10,
    });
    expect(
      registered
        .filter((r) => r.name.startsWith("dns-northwind-traders-example-"))
        .map((r) => r.name)
        .sort(),
    ).toEqual(["dns-northwind-traders-example-mx", "dns-northwind-traders-example-spf"]);
  });

  it("the MX of a cut-over domain is registered only after the gateway and the lock-down connector", async () => {
    const { registered } = await runProgram("example");
    const at = (name: string) => registered.findIndex((r) => r.name === name);
    expect(at("dns-northwind-example-mx")).toBeGreaterThan(at("hosting-app"));
    expect(at("dns-northwind-example-mx")).toBeGreaterThan(at("exchange-lockdown"));
    expect(at("dns-northwind-traders-example-mx")).toBeLessThan(at("hosting-app")); // not cut over: no wait
  });

  it("outbound through the gateway puts its egress IP in SPF; a given zoneId is used instead of a lookup", async () => {
    const { registered } = await runProgram(
      "outbound",
      exampleConfig({
        "moat:outbound": { enabled: true },
        "moat:domains": [
          {
            name: "northwind.example",
            cutover: true,
            zoneId: "fedcba9876543210fedcba9876543210",
            mtaSts: "testing",
            exchangeMx: "northwind-example.r-v1.mx.microsoft",
          },
          TRADERS,
        ],
      }),
    );
    expect(record(registered, "dns-northwind-example-spf")?.content).toBe(
      `v=spf1 ip4:${FAKE_EGRESS_IP} include:spf.protection.outlook.com -all`,
    );
    expect(record(registered, "dns-northwind-example-mx")?.zoneId).toBe("fedcba9876543210fedcba9876543210");
  });

  it("planning never needs the network: the records of a stack are a pure function of its config", () => {
    const settings = parseSettings({
      "moat:tenantId": "11111111-2222-3333-4444-555555555555",
      "moat:domains": [
        { name: "acme.com", cutover: false, exchangeMx: "acme-com.r-v1.mx.microsoft", mtaSts: "enforce" },
      ],
      "moat:gateway": { hosting: "external", egressIps: ["203.0.113.25"], inboundIp: "203.0.113.30" },
    });
    const planned = planDomainRecords(settings, settings.domains[0]!, "mx.acme.com", ["203.0.113.25"]);
    expect(planned.records.find((r) => r.key === "mx")?.content).toBe("acme-com.r-v1.mx.microsoft");
    expect(planned.mtaStsPolicy).toBe(mtaStsPolicy("enforce", ["acme-com.r-v1.mx.microsoft"]));
  });
});
