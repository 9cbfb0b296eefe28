/**
 * vitest globalSetup: one certificate for the HTTPS test doubles (Graph, the Entra token
 * endpoint), trusted by every test process through NODE_EXTRA_CA_CERTS. Node reads that
 * variable only at start-up, so it is set here, before vitest forks the test processes;
 * children those tests start (the CLI, the gateway) inherit it too.
 *
 * The same way, every test process and its children get one temporary directory for the
 * run as TMPDIR (`os.tmpdir()` reads it on every call), removed when the run ends: the
 * spools, trackers, stacks and certificates the tests make there go with it, whether or not
 * each test cleans up after itself. It is readable by all, as /tmp is: rspamd and clamd run
 * as their own users and keep their state below it.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCertificate } from "../helpers/tls";

export default function setup(): () => void {
  const run = mkdtempSync(join(tmpdir(), "moat-tests-"));
  chmodSync(run, 0o755);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = run;
  const dir = mkdtempSync(join(run, "moat-test-ca-"));
  const { certFile, keyFile } = makeCertificate(dir, "doubles", "localhost", "DNS:localhost,IP:127.0.0.1");
  process.env.NODE_EXTRA_CA_CERTS = certFile;
  process.env.MOAT_TEST_DOUBLES_CERT = certFile;
  process.env.MOAT_TEST_DOUBLES_KEY = keyFile;
  return () => {
    rmSync(run, { recursive: true, force: true });
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  };
}
