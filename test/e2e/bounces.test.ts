/**
 * Bounces after acceptance: the smart host refuses a recipient the gateway had accepted; the
 * sender gets an RFC 3464 DSN through the internet route (real DNS server and MX sink on
 * loopback). Never to the null sender.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildDsn, statusOf } from "../../gateway/delivery/dsn";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";
import {
  type GatewayProcess,
  queueFiles,
  startGatewayProcess,
  waitUntil,
  writeTestConfig,
} from "../helpers/gateway-process";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("DSN format", () => {
  it("is a multipart/report with the per-recipient status and the original headers", () => {
    const dsn = buildDsn({
      reportingHost: "mx.northwind.example",
      queueId: "Q1",
      originalSender: "sender@remote.example",
      arrivalDate: new Date("2026-11-22T10:00:00Z"),
      failures: [
        { recipient: "anna@northwind.example", response: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found" },
      ],
      originalHeaders: "Subject: hello\r\nFrom: sender@remote.example",
      now: new Date("2026-11-22T10:05:00Z"),
    });
    expect(dsn).toMatch(
      /^Content-Type: multipart\/report; report-type=delivery-status; boundary="moat-dsn-[0-9a-f]+"$/m,
    );
    expect(dsn).toContain(
      "Reporting-MTA: dns; mx.northwind.example\r\nX-Moat-Queue-ID: Q1\r\nArrival-Date: Sun, 22 Nov 2026 10:00:00 +0000",
    );
    expect(dsn).toContain(
      "Final-Recipient: rfc822; anna@northwind.example\r\nAction: failed\r\nStatus: 5.1.10\r\nDiagnostic-Code: smtp; 550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found",
    );
    expect(dsn).toContain(
      "Content-Type: text/rfc822-headers\r\nContent-Description: Undelivered message headers\r\n\r\nSubject: hello\r\n",
    );
    expect(dsn).toContain("Auto-Submitted: auto-replied");
  });

  it("maps replies to final status codes", () => {
    expect(statusOf("550 5.7.1 refused")).toBe("5.7.1");
    expect(statusOf("4.4.7 delivery time expired; last reply: 451 4.4.1 timeout")).toBe("5.4.7");
    expect(statusOf("connection refused")).toBe("5.0.0");
  });
});

describe("bounces after acceptance", () => {
  let smartHost: Sink;
  let internet: Sink;
  let dns: DnsServer;
  let gateway: GatewayProcess;
  let dataDir: string;

  beforeAll(async () => {
    smartHost = await startSink({ refuse: { "carla.mendes@northwind.example": 550 } });
    internet = await startSink();
    dns = await startDnsServer({
      "remote.example": { MX: [{ exchange: "mx.remote.example", preference: 10 }] },
      "mx.remote.example": { A: ["127.0.0.1"] },
    });
    const written = writeTestConfig({
      smartHostPort: smartHost.port,
      edit: (d) => ({ ...d, outbound: { ...d.outbound, remotePort: internet.port } }),
    });
    dataDir = written.dataDir;
    const file = written.file;
    gateway = await startGatewayProcess(["--config", file], { MOAT_DNS_SERVERS: dns.address });
  });

  afterAll(async () => {
    await gateway?.stop();
    await Promise.all([smartHost?.close(), internet?.close(), dns?.close()]);
  });

  it("sends the sender a DSN from the null sender, to its domain's MX, and delivers the rest", async () => {
    const result = await sendMail(
      gateway.smtpPort,
      { from: "sender@remote.example", to: ["carla.mendes@northwind.example", "anna.berg@northwind.example"] },
      testMessage("will partly bounce"),
    );
    expect(result.accepted).toHaveLength(2);
    const [delivered] = await smartHost.waitFor(1);
    expect(delivered?.rcptTo).toEqual(["anna.berg@northwind.example"]);
    const [dsn] = await internet.waitFor(1);
    expect(dsn?.mailFrom).toBe("");
    expect(dsn?.rcptTo).toEqual(["sender@remote.example"]);
    expect(dsn?.raw).toContain("Final-Recipient: rfc822; carla.mendes@northwind.example");
    expect(dsn?.raw).toContain("Subject: will partly bounce");
    expect(dsn?.raw).not.toContain("Hello from the test."); // headers only, not the body
  });

  it("never bounces a bounce: a null-sender message that fails is held", async () => {
    const before = internet.messages.length;
    const result = await sendMail(
      gateway.smtpPort,
      { from: "", to: ["carla.mendes@northwind.example"] },
      testMessage("a bounce that fails"),
    );
    expect(result.accepted).toEqual(["carla.mendes@northwind.example"]);
    await waitUntil(() => queueFiles(dataDir, "hold").length > 0, "the bounce to be held");
    expect(queueFiles(dataDir, "hold")).toHaveLength(1);
    expect(internet.messages.length).toBe(before);
  });
});
