/**
 * The walking skeleton end to end: a real SMTP client -> `moat serve` (child process, the
 * CLI as users run it) -> a real SMTP sink on loopback started by the test.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GatewayConfigInput } from "../../gateway/config";
import { openSqliteTracker } from "../../gateway/store/tracker";
import {
  type GatewayProcess,
  queueFiles,
  runCli,
  startGatewayProcess,
  waitUntil,
  writeTestConfig,
} from "../helpers/gateway-process";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

const LOOPBACK_ANY_PORT = "127.0.0.1:0";

function writeStackOutput(
  smartHostPort: number,
  deliveryTls: "required" | "allow-plain",
  edit?: (d: GatewayConfigInput) => GatewayConfigInput,
) {
  return writeTestConfig({ smartHostPort, deliveryTls, asStackOutput: true, ...(edit ? { edit } : {}) });
}

describe("serve --config with a stack output file", () => {
  let sink: Sink;
  let gateway: GatewayProcess;
  let dataDir: string;
  let dns: DnsServer;

  beforeAll(async () => {
    sink = await startSink();
    // The client's name in the Received header: its PTR, confirmed by the name's A record.
    dns = await startDnsServer({
      "1.0.0.127.in-addr.arpa": { PTR: ["client-host.test"] },
      "client-host.test": { A: ["127.0.0.1"] },
    });
    const written = writeStackOutput(sink.port, "allow-plain");
    dataDir = written.dataDir;
    gateway = await startGatewayProcess(["--config", written.file], { MOAT_DNS_SERVERS: dns.address });
  });
  afterAll(async () => {
    await dns?.close();
    expect(await gateway?.stop()).toBe(0);
    await sink?.close();
  });

  it("accepts mail for a known user and delivers it to the smart host with a Received header", async () => {
    const result = await sendMail(
      gateway.smtpPort,
      { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
      testMessage("round trip"),
    );
    expect(result.accepted).toEqual(["anna.berg@northwind.example"]);
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/);
    const [delivered] = await sink.waitFor(1);
    expect(delivered?.mailFrom).toBe("sender@outside.example");
    expect(delivered?.rcptTo).toEqual(["anna.berg@northwind.example"]);
    expect(delivered?.raw).toMatch(
      /^X-Moat-Relayed: [0-9a-f-]+\r\nAuthentication-Results: mx\.northwind\.example;\r\n dkim=none[^]*?\r\nReceived: from client\.test \(client-host\.test \[127\.0\.0\.1\]\)\r\n\tby mx\.northwind\.example \(Moat\) with ESMTP id [0-9A-Z]+\r\n\tfor <anna\.berg@northwind\.example>;/,
    );
    expect(delivered?.raw).toContain("Subject: round trip");
    // The loop guard the Exchange outbound rule exempts, with this tenant's id.
    expect(delivered?.raw.startsWith("X-Moat-Relayed: 6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f\r\n")).toBe(true);
  });

  it("refuses an unknown user with the SPEC text and another domain as relay, and records the refusals", async () => {
    const unknown = await sendMail(
      gateway.smtpPort,
      { from: "sender@outside.example", to: ["nobody@northwind.example"] },
      testMessage("x"),
    );
    expect(unknown.rejected["nobody@northwind.example"]).toBe(
      "550 5.1.1 <nobody@northwind.example>: Recipient address rejected: unverified address",
    );
    for (const foreign of [
      "victim@gmail.com",
      "anna.berg@sub.northwind.example",
      "anna.berg%gmail.com@northwind.example",
    ]) {
      const result = await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: [foreign] },
        testMessage("relay"),
      );
      expect(result.accepted).toEqual([]);
      expect(result.rejected[foreign]).toMatch(
        /^55[04] 5\.\d\.\d <.+>: (Relay access denied|Recipient address rejected: unverified address)$/,
      );
    }
    const tracker = await openSqliteTracker(join(dataDir, "tracker.sqlite"));
    try {
      expect((await tracker.rejections()).map((r) => r.recipient)).toEqual(
        expect.arrayContaining([
          "nobody@northwind.example",
          "victim@gmail.com",
          "anna.berg%gmail.com@northwind.example",
        ]),
      );
    } finally {
      await tracker.close();
    }
  });

  it("delivers to the accepted recipients of a mixed transaction, aliases included", async () => {
    const before = sink.messages.length;
    const result = await sendMail(
      gateway.smtpPort,
      {
        from: "sender@outside.example",
        to: ["invoices@northwind.example", "ghost@northwind.example", "Sales@Northwind-Traders.example"],
      },
      testMessage("mixed"),
    );
    expect(result.accepted).toEqual(["invoices@northwind.example", "Sales@Northwind-Traders.example"]);
    expect(Object.keys(result.rejected)).toEqual(["ghost@northwind.example"]);
    const messages = await sink.waitFor(before + 1);
    expect(messages[before]?.rcptTo).toEqual(["invoices@northwind.example", "Sales@Northwind-Traders.example"]);
  });

  it("reuses its connection to the smart host for consecutive messages", async () => {
    const before = sink.messages.length;
    const sessionsBefore = sink.connections();
    for (let i = 0; i < 5; i++) {
      await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: ["elif.yilmaz@northwind.example"] },
        testMessage(`reuse ${i}`),
      );
      await sink.waitFor(before + i + 1);
    }
    expect(sink.connections() - sessionsBefore).toBeLessThanOrEqual(1);
  });

  it("serves /healthz and /metrics that count what happened", async () => {
    const response = await fetch(`http://127.0.0.1:${gateway.httpPort}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: "ok", customer: "example" });
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.httpPort}/metrics`)).text();
    expect(
      Number(/^moat_messages_accepted_total\{direction="inbound"\} (\d+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(7); // 1 + 1 mixed + 5 reused, from the tests above
    expect(metrics).toMatch(/^moat_smtp_refusals_total\{reason="unknown"\} [1-9]/m);
    expect(metrics).toMatch(/^moat_delivery_attempts_total\{outcome="delivered"\} [1-9]/m);
    // Every recipient delivered is timed from its arrival (the sink has had every one above).
    const delivered = Number(/^moat_delivery_attempts_total\{outcome="delivered"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(metrics).toMatch(new RegExp(`^moat_delivery_seconds_count\\{stage="delivered"\\} ${delivered}$`, "m"));
    expect(metrics).toMatch(/^moat_delivery_seconds_count\{stage="attempt"\} [1-9]/m);
    expect(metrics).toMatch(/^moat_queue_messages\{state="corrupt"\} 0$/m);
    // Every accepted message is timed, stage by stage, up to its 250.
    const accepted = [...metrics.matchAll(/^moat_messages_accepted_total\{direction="\w+"\} (\d+)$/gm)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    );
    for (const stage of ["transfer", "verdict", "spool", "record", "total"])
      expect(metrics, stage).toMatch(new RegExp(`^moat_accept_seconds_count\\{stage="${stage}"\\} ${accepted}$`, "m"));
    const total = Number(/^moat_accept_seconds_sum\{stage="total"\} (\S+)$/m.exec(metrics)?.[1]);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThan(accepted * 30);
    expect(metrics).toMatch(new RegExp(`^moat_accept_seconds_bucket\\{stage="total",le="\\+Inf"\\} ${accepted}$`, "m"));
    // Nothing learned yet: an admin sees the Bayes filter is not voting.
    expect(metrics).toMatch(/^moat_bayes_learned_messages\{label="spam"\} 0$/m);
    expect(metrics).toMatch(/^moat_bayes_learned_messages\{label="ham"\} 0$/m);
    // The event loop's load: it has run every message above, and each scrape is a new delay window.
    expect(metrics).toContain("# TYPE moat_event_loop_busy_seconds_total counter\n");
    expect(Number(/^moat_event_loop_busy_seconds_total (\S+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^moat_event_loop_delay_seconds\{quantile="0\.99"\} \d/m);
  });
});

describe("delivery TLS", () => {
  it("keeps mail queued when STARTTLS is required and the smart host does not offer it", async () => {
    const sink = await startSink({ starttls: false });
    const { file, dataDir } = writeStackOutput(sink.port, "required");
    const gateway = await startGatewayProcess(["--config", file], {});
    try {
      const result = await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: ["ben@northwind.example"] },
        testMessage("tls"),
      );
      expect(result.accepted).toEqual(["ben@northwind.example"]);
      await waitUntil(() => queueFiles(dataDir, "deferred").length === 1, "the message to be deferred");
      expect(sink.messages).toEqual([]);
      expect(gateway.stderr()).toMatch(/delivery deferred .*to=ben@northwind\.example/);
    } finally {
      expect(await gateway.stop()).toBe(0);
      await sink.close();
    }
  });
});

describe("npm start: the embedded default with the development mailbox", () => {
  it("delivers mail for a user of the example stack into the mailbox folder it announces", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "moat-e2e-default-"));
    const gateway = await startGatewayProcess([], {
      MOAT_DATA_DIR: dataDir,
      MOAT_SMTP_LISTEN: LOOPBACK_ANY_PORT,
      MOAT_HTTP_LISTEN: LOOPBACK_ANY_PORT,
    });
    try {
      const mailboxDir = join(dataDir, "dev-mailbox");
      expect(gateway.stdout()).toContain(`delivered mail is written to ${mailboxDir}/`);
      const result = await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: ["david@northwind.example"] },
        testMessage("hello newcomer"),
      );
      expect(result.accepted).toEqual(["david@northwind.example"]);
      await waitUntil(
        () => existsSync(mailboxDir) && readdirSync(mailboxDir).length === 1,
        "the dev mailbox to receive the message",
      );
      const [file] = readdirSync(mailboxDir);
      expect(readFileSync(join(mailboxDir, file ?? ""), "utf8")).toContain("Subject: hello newcomer");
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });
});

describe("serve with a bad config", () => {
  it("exits 1 naming the key path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-e2e-bad-"));
    const file = join(dir, "bad.json");
    writeFileSync(file, JSON.stringify({ gatewayConfig: { version: 1, customer: "x" } }));
    const { code, stderr } = await runCli(["serve", "--config", file]);
    expect(code).toBe(1);
    expect(stderr).toContain("gatewayConfig.tenantId: required");
    expect(stderr).not.toContain("    at "); // a message, not a stack trace
  });
});

describe("serve with dynamic verification", () => {
  it("asks the smart host: its mailboxes get 250 and are delivered, others the SPEC 550", async () => {
    const sink = await startSink({ mailboxes: ["newhire@northwind.example"] });
    const { file } = writeStackOutput(sink.port, "allow-plain", (d) => ({
      ...d,
      verification: { ...d.verification, mode: "dynamic" },
    }));
    const gateway = await startGatewayProcess(["--config", file], {});
    try {
      // Not in the users file: only the downstream knows this mailbox.
      const known = await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: ["newhire@northwind.example"] },
        testMessage("dynamic"),
      );
      expect(known.accepted).toEqual(["newhire@northwind.example"]);
      const unknown = await sendMail(
        gateway.smtpPort,
        { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
        testMessage("x"),
      );
      expect(unknown.rejected["anna.berg@northwind.example"]).toBe(
        "550 5.1.1 <anna.berg@northwind.example>: Recipient address rejected: unverified address",
      );
      const [delivered] = await sink.waitFor(1);
      expect(delivered?.rcptTo).toEqual(["newhire@northwind.example"]);
    } finally {
      await gateway.stop();
      await sink.close();
    }
  });
});
