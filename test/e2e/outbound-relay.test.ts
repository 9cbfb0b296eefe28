/**
 * Outbound relay: mail from the tenant's Exchange Online (here: loopback, declared as the
 * relay range) to the internet, delivered to the recipient domain's MX found through a real
 * DNS server on loopback. Only this tenant may relay.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";
import { type GatewayProcess, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail } from "../helpers/smtp-client";
import { makeCertificate } from "../helpers/tls";

const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
let dns: DnsServer;
let internet: Sink;
let gateway: GatewayProcess;

function fromTenant(tenantId: string | undefined, subject: string): string {
  return [
    "From: Anna Berg <anna.berg@northwind.example>",
    "To: bob@remote.example",
    `Subject: ${subject}`,
    ...(tenantId ? [`X-MS-Exchange-CrossTenant-Id: ${tenantId}`] : []),
    "",
    "Hello from the tenant.",
    "",
  ].join("\r\n");
}

beforeAll(async () => {
  internet = await startSink();
  dns = await startDnsServer({
    "remote.example": { MX: [{ exchange: "mx.remote.example", preference: 10 }] },
    "mx.remote.example": { A: ["127.0.0.1"] },
  });
  const { file } = writeTestConfig({
    smartHostPort: 9,
    edit: (d) => ({ ...d, outbound: { enabled: true, relayFrom: ["127.0.0.0/8"], remotePort: internet.port } }),
  });
  gateway = await startGatewayProcess(["--config", file], { MOAT_DNS_SERVERS: dns.address });
});

afterAll(async () => {
  await gateway?.stop();
  await internet?.close();
  await dns?.close();
});

describe("outbound relay from the tenant", () => {
  it("relays this tenant's mail to the recipient domain's MX", async () => {
    const result = await sendMail(
      gateway.smtpPort,
      { from: "anna.berg@northwind.example", to: ["bob@remote.example"] },
      fromTenant(TENANT, "outbound ok"),
    );
    expect(result.response).toMatch(/^250 /);
    const [delivered] = await internet.waitFor(1);
    expect(delivered).toMatchObject({ mailFrom: "anna.berg@northwind.example", rcptTo: ["bob@remote.example"] });
    expect(delivered?.raw).not.toContain("X-Moat-Relayed"); // the loop guard is for the tenant only
    expect(dns.queries).toContain("MX remote.example");
  });

  it("refuses mail from another tenant, or without a tenant id, after reading it and before the 250", async () => {
    const other = await sendMail(
      gateway.smtpPort,
      { from: "anna.berg@northwind.example", to: ["bob@remote.example"] },
      fromTenant("99999999-0000-0000-0000-000000000000", "other tenant"),
    );
    expect(other.response).toBe("550 5.7.1 Relay access denied: the message comes from another Microsoft 365 tenant");
    const none = await sendMail(
      gateway.smtpPort,
      { from: "anna.berg@northwind.example", to: ["bob@remote.example"] },
      fromTenant(undefined, "no tenant"),
    );
    expect(none.response).toBe(
      "550 5.7.1 Relay access denied: the message does not come from this tenant (no tenant id)",
    );
  });

  it("refuses at RCPT an envelope sender outside the customer's domains", async () => {
    const result = await sendMail(
      gateway.smtpPort,
      { from: "someone@other-tenant.example", to: ["bob@remote.example"] },
      fromTenant(TENANT, "foreign sender"),
    );
    expect(result.rejected["bob@remote.example"]).toBe("554 5.7.1 <bob@remote.example>: Relay access denied");
    await new Promise((r) => setTimeout(r, 300));
    expect(internet.messages.map((m) => /Subject: (.*)/.exec(m.raw)?.[1])).toEqual(["outbound ok"]);
  });
});

describe("outbound through a configured relay", () => {
  it("sends the tenant's outbound mail to the relay over verified STARTTLS instead of to MX hosts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-outbound-relay-"));
    const certificate = makeCertificate(dir, "relay", "relay.test", "IP:127.0.0.1");
    const relay = await startSink({ tls: { key: certificate.keyPem, cert: certificate.certPem } });
    const { file } = writeTestConfig({
      smartHostPort: 9,
      edit: (d) => ({
        ...d,
        outbound: {
          enabled: true,
          relayFrom: ["127.0.0.0/8"],
          remotePort: 9,
          smartHost: { host: "127.0.0.1", port: relay.port },
        },
      }),
    });
    const viaRelay = await startGatewayProcess(["--config", file], { NODE_EXTRA_CA_CERTS: certificate.certFile });
    try {
      const result = await sendMail(
        viaRelay.smtpPort,
        { from: "anna.berg@northwind.example", to: ["carol@elsewhere.example"] },
        fromTenant(TENANT, "via relay"),
      );
      expect(result.response).toMatch(/^250 /);
      const [delivered] = await relay.waitFor(1);
      expect(delivered).toMatchObject({ rcptTo: ["carol@elsewhere.example"], secure: true });
    } finally {
      await viaRelay.stop();
      await relay.close();
    }
  });
});
