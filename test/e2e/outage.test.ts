/** The smart host goes away and comes back: accepted mail waits in the queue and then goes out, with no restart. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildGatewayConfig } from "../../components/gateway-document";
import { PROJECT_DIR, loadStackFile } from "../../components/stack-config";
import { freePort, startGatewayProcess } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("downstream outage", () => {
  it("keeps accepting while the smart host is down and delivers everything once it is back", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "moat-outage-"));
    const document = buildGatewayConfig(loadStackFile(PROJECT_DIR, "example"), {
      smtpListen: "127.0.0.1:0",
      httpListen: "127.0.0.1:0",
      dataDir: join(dir, "data"),
      smartHost: { host: "127.0.0.1", port },
      deliveryTls: "allow-plain",
    });
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...document, delivery: { ...document.delivery, retry: { minBackoffMs: 300, maxBackoffMs: 1000, maxQueueLifetimeMs: 3_600_000 } } }));
    const gateway = await startGatewayProcess(["--config", join(dir, "config.json")], {});
    try {
      for (const subject of ["during outage 1", "during outage 2", "during outage 3"]) {
        const result = await sendMail(gateway.smtpPort, { from: "sender@outside.example", to: ["ben@northwind.example"] }, testMessage(subject));
        expect(result.response).toMatch(/^250 /);
      }
      const deadline = Date.now() + 10_000;
      while ((gateway.stderr().match(/delivery deferred/g) ?? []).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(gateway.stderr()).toMatch(/delivery deferred .*ECONNREFUSED/);
      const sink = await startSink({ port });
      try {
        const delivered = await sink.waitFor(3, 15_000);
        expect(delivered.map((m) => /Subject: (.*)/.exec(m.raw)?.[1]).sort()).toEqual(["during outage 1", "during outage 2", "during outage 3"]);
      } finally {
        await sink.close();
      }
    } finally {
      await gateway.stop();
    }
  }, 40_000);
});
