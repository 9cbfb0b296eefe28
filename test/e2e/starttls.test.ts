/** Inbound STARTTLS with the configured certificate, TLS 1.2+, and reload without restart. */
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { makeCertificate, probeStartTls } from "../helpers/tls";

function configWithTls(tls: { certFile: string; keyFile: string }): string {
  return writeTestConfig({ smartHostPort: 9, deliveryTls: "required", tls }).file;
}

describe("inbound STARTTLS", () => {
  it("presents the configured certificate over TLS 1.2+, and a new one after SIGHUP without a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-tls-"));
    const first = makeCertificate(dir, "first", "mx.northwind.example");
    const second = makeCertificate(dir, "second", "mx.northwind.example");
    const live = { certFile: join(dir, "live.crt"), keyFile: join(dir, "live.key") };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    const gateway = await startGatewayProcess(["--config", configWithTls(live)], {});
    try {
      const before = await probeStartTls(gateway.smtpPort);
      expect(before.ehlo).toMatch(/^250-STARTTLS$/m);
      expect(before.fingerprint256).toBe(new X509Certificate(first.certPem).fingerprint256);
      expect(["TLSv1.2", "TLSv1.3"]).toContain(before.protocol);

      copyFileSync(second.keyFile, live.keyFile);
      copyFileSync(second.certFile, live.certFile);
      gateway.child.kill("SIGHUP");
      const deadline = Date.now() + 5000;
      let after = await probeStartTls(gateway.smtpPort);
      while (after.fingerprint256 !== new X509Certificate(second.certPem).fingerprint256 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        after = await probeStartTls(gateway.smtpPort);
      }
      expect(after.fingerprint256).toBe(new X509Certificate(second.certPem).fingerprint256);
      expect(gateway.stderr()).toMatch(/TLS certificate reloaded reason=SIGHUP/);
    } finally {
      expect(await gateway.stop()).toBe(0);
    }
  });

  it("keeps the certificate in use when the new files are broken", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-tls-bad-"));
    const good = makeCertificate(dir, "good", "mx.northwind.example");
    const live = { certFile: join(dir, "live.crt"), keyFile: join(dir, "live.key") };
    copyFileSync(good.certFile, live.certFile);
    copyFileSync(good.keyFile, live.keyFile);
    const gateway = await startGatewayProcess(["--config", configWithTls(live)], {});
    try {
      writeFileSync(live.certFile, "not a certificate");
      gateway.child.kill("SIGHUP");
      const deadline = Date.now() + 5000;
      while (!/TLS certificate reload failed/.test(gateway.stderr()) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(gateway.stderr()).toMatch(
        /TLS certificate reload failed; the previous certificate stays in use .*live\.crt is not a PEM certificate/,
      );
      expect((await probeStartTls(gateway.smtpPort)).fingerprint256).toBe(
        new X509Certificate(good.certPem).fingerprint256,
      );
    } finally {
      await gateway.stop();
    }
  });

  it("refuses to start with a key that does not belong to the certificate", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-tls-mismatch-"));
    const a = makeCertificate(dir, "a", "mx.northwind.example");
    const b = makeCertificate(dir, "b", "mx.northwind.example");
    const { code, stderr } = await runCli(
      ["serve", "--config", configWithTls({ certFile: a.certFile, keyFile: b.keyFile })],
      { MOAT_CONFIG: "" },
    );
    expect(code).toBe(1);
    expect(stderr).toContain(`moat: TLS certificate: ${b.keyFile} is not the key of ${a.certFile}`);
    expect(stderr).not.toContain("    at ");
  });
});
