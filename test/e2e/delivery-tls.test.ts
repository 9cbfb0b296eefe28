/** Delivery to the smart host over STARTTLS with the certificate checked against its name. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { queueFiles, startGatewayProcess, waitUntil, writeTestConfig } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";
import { makeCertificate } from "../helpers/tls";

async function scenario(options: { trustSinkCertificate: boolean; verifyCertificate: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-delivery-tls-"));
  // The smart host is reached as 127.0.0.1, so its certificate names that address.
  const certificate = makeCertificate(dir, "sink", "smart-host.test", "IP:127.0.0.1");
  const sink = await startSink({ tls: { key: certificate.keyPem, cert: certificate.certPem } });
  const { dataDir, file } = writeTestConfig({
    smartHostPort: sink.port,
    deliveryTls: "required",
    edit: (d) => ({ ...d, delivery: { ...d.delivery, verifyCertificate: options.verifyCertificate } }),
  });
  const gateway = await startGatewayProcess(
    ["--config", file],
    options.trustSinkCertificate ? { NODE_EXTRA_CA_CERTS: certificate.certFile } : {},
  );
  const result = await sendMail(
    gateway.smtpPort,
    { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
    testMessage("tls delivery"),
  );
  expect(result.accepted).toEqual(["anna.berg@northwind.example"]);
  return { dataDir, sink, gateway };
}

describe("delivery TLS", () => {
  it("delivers over STARTTLS to a smart host whose certificate is trusted and names it", async () => {
    const { sink, gateway } = await scenario({ trustSinkCertificate: true, verifyCertificate: true });
    try {
      const [message] = await sink.waitFor(1);
      expect(message?.secure).toBe(true);
    } finally {
      await gateway.stop();
      await sink.close();
    }
  });

  it("keeps the message queued when the certificate cannot be verified", async () => {
    const { dataDir, sink, gateway } = await scenario({ trustSinkCertificate: false, verifyCertificate: true });
    try {
      await waitUntil(() => queueFiles(dataDir, "deferred").length > 0, "the message to be deferred");
      expect(queueFiles(dataDir, "deferred")).toHaveLength(1);
      expect(sink.messages).toEqual([]);
      expect(gateway.stderr()).toMatch(/delivery deferred .*self[- ]signed certificate/i);
    } finally {
      await gateway.stop();
      await sink.close();
    }
  });

  it("with verification switched off (lab setups) delivers, and says so loudly at start-up", async () => {
    const { sink, gateway } = await scenario({ trustSinkCertificate: false, verifyCertificate: false });
    try {
      await sink.waitFor(1);
      expect(gateway.stderr()).toContain("THE SMART HOST'S TLS CERTIFICATE IS NOT VERIFIED");
    } finally {
      await gateway.stop();
      await sink.close();
    }
  });
});
