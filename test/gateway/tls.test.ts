import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CertificateError, loadCertificate } from "../../gateway/inbound/tls";
import { makeCertificate } from "../helpers/tls";

describe("loading the STARTTLS certificate", () => {
  it("reads key and certificate from one PEM file, as Key Vault exports a certificate", () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-pem-"));
    const made = makeCertificate(dir, "mx", "mx.northwind.example");
    const combined = join(dir, "tls.pem");
    writeFileSync(combined, `${readFileSync(made.keyFile, "utf8")}${made.certPem}`);
    const loaded = loadCertificate({ certFile: combined, keyFile: combined });
    expect(loaded.fingerprint256).toBe(new X509Certificate(made.certPem).fingerprint256);
    expect(loaded.subject).toContain("CN=mx.northwind.example");
  });

  it("names the file and the problem", () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-pem-"));
    const made = makeCertificate(dir, "mx", "mx.northwind.example");
    expect(() => loadCertificate({ certFile: join(dir, "missing.pem"), keyFile: made.keyFile })).toThrow(
      CertificateError,
    );
    expect(() => loadCertificate({ certFile: join(dir, "missing.pem"), keyFile: made.keyFile })).toThrow(
      /cannot read .*missing\.pem \(ENOENT\)/,
    );
    expect(() => loadCertificate({ certFile: made.certFile, keyFile: made.certFile })).toThrow(
      `TLS certificate: ${made.certFile} is not a PEM private key`,
    );
    expect(() =>
      loadCertificate({ certFile: made.certFile, keyFile: made.keyFile }, Date.now() + 10 * 86_400_000),
    ).toThrow(/expired on/);
  });
});
