/** A 25 MB message passes through the gateway byte for byte (memory is measured in bench/). */
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildGatewayConfig } from "../../components/gateway-document";
import { PROJECT_DIR, loadStackFile } from "../../components/stack-config";
import { startGatewayProcess } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { largeMessage, sendMail } from "../helpers/smtp-client";

const LARGE_BYTES = 25 * 1024 * 1024;

describe("a large message", () => {
  it("is accepted and delivered unchanged", async () => {
    const sink = await startSink();
    const dir = mkdtempSync(join(tmpdir(), "moat-large-"));
    const document = buildGatewayConfig(loadStackFile(PROJECT_DIR, "example"), {
      smtpListen: "127.0.0.1:0",
      httpListen: "127.0.0.1:0",
      dataDir: join(dir, "data"),
      smartHost: { host: "127.0.0.1", port: sink.port },
      deliveryTls: "allow-plain",
    });
    writeFileSync(join(dir, "config.json"), JSON.stringify(document));
    const gateway = await startGatewayProcess(["--config", join(dir, "config.json")], {});
    try {
      const message = largeMessage(LARGE_BYTES);
      const result = await sendMail(gateway.smtpPort, { from: "a@outside.example", to: ["anna.berg@northwind.example"] }, message);
      expect(result.response).toMatch(/^250 /);
      const [delivered] = await sink.waitFor(1, 30_000);
      const body = delivered!.raw.slice(delivered!.raw.indexOf("From: a@outside.example"));
      expect(createHash("sha256").update(body).digest("hex")).toBe(createHash("sha256").update(message).digest("hex"));
    } finally {
      await gateway.stop();
      await sink.close();
    }
  }, 60_000);
});
