/**
 * The inbound listener's certificate: PEM files from the gatewayConfig (`smtp.tls`), checked
 * at load (a certificate, a key that matches it, not expired), and reloaded without a restart
 * when the files change (polled) or on SIGHUP. A reload that fails keeps the certificate in
 * use and logs why; a start-up with a bad certificate fails with the reason.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { SMTPServer } from "smtp-server";
import type { Logger } from "../log";

export interface CertificateFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface LoadedCertificate {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly subject: string;
  readonly validTo: string;
  readonly fingerprint256: string;
}

/** A certificate the gateway cannot use; the message names the file and the reason. */
export class CertificateError extends Error {
  override name = "CertificateError";
}

/** How often the files are looked at for changes (certificate renewals are rare). */
export const CERTIFICATE_POLL_INTERVAL_MS = 60 * 1000;

export function loadCertificate(files: CertificateFiles, now = Date.now()): LoadedCertificate {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(files.certFile);
    key = readFileSync(files.keyFile);
  } catch (error) {
    throw new CertificateError(
      `TLS certificate: cannot read ${(error as NodeJS.ErrnoException).path ?? "file"} (${(error as NodeJS.ErrnoException).code})`,
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new CertificateError(`TLS certificate: ${files.certFile} is not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new CertificateError(`TLS certificate: ${files.keyFile} is not a PEM private key`);
  }
  if (!x509.checkPrivateKey(privateKey))
    throw new CertificateError(`TLS certificate: ${files.keyFile} is not the key of ${files.certFile}`);
  if (Date.parse(x509.validTo) < now)
    throw new CertificateError(`TLS certificate: ${files.certFile} expired on ${x509.validTo}`);
  return {
    key,
    cert,
    subject: x509.subject.replace(/\n/g, ", "),
    validTo: x509.validTo,
    fingerprint256: x509.fingerprint256,
  };
}

export interface CertificateReloader {
  reload(reason: string): void;
  close(): void;
}

export function watchCertificate(
  server: SMTPServer,
  files: CertificateFiles,
  current: LoadedCertificate,
  log: Logger,
  pollIntervalMs = CERTIFICATE_POLL_INTERVAL_MS,
): CertificateReloader {
  let inUse = current;
  const reload = (reason: string) => {
    try {
      const next = loadCertificate(files);
      if (next.fingerprint256 === inUse.fingerprint256) return;
      server.updateSecureContext({ key: next.key, cert: next.cert });
      inUse = next;
      log.info("TLS certificate reloaded", { reason, subject: next.subject, validTo: next.validTo });
    } catch (error) {
      log.error("TLS certificate reload failed; the previous certificate stays in use", {
        reason,
        error: (error as Error).message,
      });
    }
  };
  const onChange = () => reload("file changed");
  watchFile(files.certFile, { interval: pollIntervalMs, persistent: false }, onChange);
  watchFile(files.keyFile, { interval: pollIntervalMs, persistent: false }, onChange);
  return {
    reload,
    close() {
      unwatchFile(files.certFile, onChange);
      unwatchFile(files.keyFile, onChange);
    },
  };
}
