/** The smart host goes away and comes back: accepted mail waits in the queue and then goes out, with no restart. */
import { describe, expect, it } from "vitest";
import { freePort, startGatewayProcess, writeTestConfig, FAST_RETRY } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("downstream outage", () => {
  it("keeps accepting while the smart host is down and delivers everything once it is back", async () => {
    const port = await freePort();
    const { file } = writeTestConfig({ smartHostPort: port, edit: (d) => ({ ...d, delivery: { ...d.delivery, retry: FAST_RETRY } }) });
    const gateway = await startGatewayProcess(["--config", file], {});
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
