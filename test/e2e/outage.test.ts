/** The smart host goes away and comes back: accepted mail waits in the queue and then goes out, with no restart. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freePort, startGatewayProcess, writeTestConfig, FAST_RETRY } from "../helpers/gateway-process";
import { openSqliteTracker } from "../../gateway/store/tracker";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("downstream outage", () => {
  it("keeps accepting while the smart host is down and delivers everything once it is back", async () => {
    const port = await freePort();
    const { file, dataDir } = writeTestConfig({
      smartHostPort: port,
      edit: (d) => ({ ...d, delivery: { ...d.delivery, retry: FAST_RETRY } }),
    });
    const ids: string[] = [];
    const gateway = await startGatewayProcess(["--config", file], {});
    try {
      for (const subject of ["during outage 1", "during outage 2", "during outage 3"]) {
        const result = await sendMail(
          gateway.smtpPort,
          { from: "sender@outside.example", to: ["ben@northwind.example"] },
          testMessage(subject),
        );
        expect(result.response).toMatch(/^250 /);
        ids.push(/queued as (\w+)/.exec(result.response)?.[1] ?? "");
      }
      const deadline = Date.now() + 10_000;
      while ((gateway.stderr().match(/delivery deferred/g) ?? []).length < 3 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(gateway.stderr()).toMatch(/delivery deferred .*ECONNREFUSED/);
      const sink = await startSink({ port });
      try {
        const delivered = await sink.waitFor(3, 15_000);
        expect(delivered.map((m) => /Subject: (.*)/.exec(m.raw)?.[1]).sort()).toEqual([
          "during outage 1",
          "during outage 2",
          "during outage 3",
        ]);
      } finally {
        await sink.close();
      }
    } finally {
      await gateway.stop();
    }
    // Every attempt is on record with the downstream's answer.
    const tracker = await openSqliteTracker(join(dataDir, "tracker.sqlite"));
    try {
      const story = await tracker.story(ids[0] ?? "");
      expect(story).toMatchObject({ status: "Deliver", subject: "during outage 1" });
      expect(story?.attempts[0]).toMatchObject({
        recipient: "ben@northwind.example",
        outcome: "temporary",
        response: expect.stringContaining("ECONNREFUSED"),
      });
      expect(story?.attempts.at(-1)).toMatchObject({ outcome: "delivered", response: expect.stringMatching(/^250 /) });
    } finally {
      await tracker.close();
    }
  }, 40_000);
});
