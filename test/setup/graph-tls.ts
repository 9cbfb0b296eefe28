/**
 * vitest globalSetup: one certificate for the HTTPS test doubles (Graph, the Entra token
 * endpoint), trusted by every test process through NODE_EXTRA_CA_CERTS. Node reads that
 * variable only at start-up, so it is set here, before vitest forks the test processes;
 * children those tests start (the CLI, the gateway) inherit it too.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate } from "../helpers/tls";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "moat-test-ca-"));
  const { certFile, keyFile } = makeCertificate(dir, "doubles", "localhost", "DNS:localhost,IP:127.0.0.1");
  process.env.NODE_EXTRA_CA_CERTS = certFile;
  process.env.MOAT_TEST_DOUBLES_CERT = certFile;
  process.env.MOAT_TEST_DOUBLES_KEY = keyFile;
  return () => rmSync(dir, { recursive: true, force: true });
}
