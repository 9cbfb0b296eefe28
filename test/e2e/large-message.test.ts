/** A 25 MB message passes through the gateway byte for byte (memory is measured in bench/). */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { largeMessage, sendMail } from "../helpers/smtp-client";

const LARGE_BYTES = 25 * 1024 * 1024;

describe("a large message", () => {
  it("is accepted and delivered unchanged", async () => {
    const sink = await startSink();
    const { file } = writeTestConfig({ smartHostPort: sink.port });
    const gateway = await startGatewayProcess(["--config", file], {});
    try {
      const message = largeMessage(LARGE_BYTES);
      const result = await sendMail(
        gateway.smtpPort,
        { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
        message,
      );
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
