/** Delivery to the smart host over STARTTLS with the certificate checked against its name. */
import { mkdtempSync, readdirSync, existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildGatewayConfig } from "../../components/gateway-document";
import { PROJECT_DIR, loadStackFile } from "../../components/stack-config";
import { startGatewayProcess } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";
import { makeCertificate } from "../helpers/tls";

async function scenario(options: { trustSinkCertificate: boolean; verifyCertificate: boolean }) {
  const dir = mkdtempSync(join(tmpdir(), "moat-delivery-tls-"));
  // The smart host is reached as 127.0.0.1, so its certificate names that address.
  const certificate = makeCertificate(dir, "sink", "smart-host.test", "IP:127.0.0.1");
  const sink = await startSink({ tls: { key: certificate.keyPem, cert: certificate.certPem } });
  const document = buildGatewayConfig(loadStackFile(PROJECT_DIR, "example"), {
    smtpListen: "127.0.0.1:0",
    httpListen: "127.0.0.1:0",
    dataDir: join(dir, "data"),
    smartHost: { host: "127.0.0.1", port: sink.port },
    deliveryTls: "required",
  });
  writeFileSync(join(dir, "config.json"), JSON.stringify({ ...document, delivery: { ...document.delivery, verifyCertificate: options.verifyCertificate } }));
  const gateway = await startGatewayProcess(["--config", join(dir, "config.json")], options.trustSinkCertificate ? { NODE_EXTRA_CA_CERTS: certificate.certFile } : {});
  const result = await sendMail(gateway.smtpPort, { from: "sender@outside.example", to: ["anna.berg@northwind.example"] }, testMessage("tls delivery"));
  expect(result.accepted).toEqual(["anna.berg@northwind.example"]);
  return { dir, sink, gateway };
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
    const { dir, sink, gateway } = await scenario({ trustSinkCertificate: false, verifyCertificate: true });
    try {
      const deferred = join(dir, "data", "queue", "deferred");
      const deadline = Date.now() + 10_000;
      while (!(existsSync(deferred) && readdirSync(deferred).length > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(readdirSync(deferred)).toHaveLength(1);
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
