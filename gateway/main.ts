/**
 * Wires the stages from a parsed config and starts listening:
 * inbound (verify -> spool, with the verdict before the 250) -> delivery, plus the HTTP app. Everything is created here and
 * passed in, so two gateways can run in one process (tests).
 *
 * close() stops accepting, lets SMTP sessions finish (bounded), waits for delivery attempts
 * under way, then closes HTTP. Mail already queued stays on disk for the next start.
 */
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { GatewayConfig } from "./config";
import { createBouncer } from "./delivery/bounce";
import { createMtaStsPolicies } from "./delivery/mta-sts-client";
import { createMxResolver } from "./delivery/mx";
import { type RemoteDelivery, createRemoteDelivery } from "./delivery/remote";
import { createDelivery } from "./delivery/scheduler";
import { createConnectionPool } from "./delivery/smtp-client";
import { createDirectory, recordsFromStaticUsers } from "./directory/directory";
import { createGraphReader } from "./directory/graph-client";
import { type SyncSchedule, startSyncSchedule } from "./directory/schedule";
import { type DirectorySync, createDirectorySync } from "./directory/sync";
import { createDirectoryStateStore } from "./store/directory-state";
import { openBayesStoreFor } from "./filters/bayes-store";
import { createGatewayScanner } from "./filters/thread-scanner";
import { createInboundServer } from "./inbound/server";
import { loadCertificate, watchCertificate } from "./inbound/tls";
import type { Logger } from "./log";
import { type ScrapedSeries, createMetrics } from "./metrics";
import { monitorEventLoop } from "./event-loop";
import { LOOP_GUARD_HEADER } from "./inbound/received";
import { createSpool } from "./queue/spool";
import { openSqliteTracker } from "./store/tracker";
import { createCalloutVerifier } from "./verify/callout";
import { createStaticVerifier } from "./verify/recipients";
import { build } from "./web/app";
import { createAuth } from "./web/auth";
import { createQuarantine } from "./quarantine/quarantine";
import { type ReleaseRequests, createReleaseRequests } from "./quarantine/release-requests";

export interface RunningGateway {
  readonly smtp: AddressInfo;
  readonly http: AddressInfo;
  /** Re-reads the STARTTLS certificate files (SIGHUP). */
  reloadTls(): void;
  /** Directory sync from Entra ID, when the config has an app for it. */
  readonly directorySync: DirectorySync | undefined;
  /** The kernel's id of the verdict's own thread, while it runs (filters.scanThread; loop-cpu.ts). */
  verdictThreadId(): number | undefined;
  close(): Promise<void>;
}

export async function startGateway(config: GatewayConfig, log: Logger): Promise<RunningGateway> {
  if (!config.filters.enabled)
    log.warn("FILTERING IS OFF (filters.enabled=false): every accepted message is delivered unscanned");
  if (config.delivery.tls === "allow-plain") {
    log.warn("delivery may fall back to plain SMTP (delivery.tls=allow-plain): for local development only", {
      smartHost: `${config.delivery.smartHost.host}:${config.delivery.smartHost.port}`,
    });
  }
  if (!config.delivery.verifyCertificate) {
    log.warn(
      "THE SMART HOST'S TLS CERTIFICATE IS NOT VERIFIED (delivery.verifyCertificate=false): anyone on the path can read and change mail; lab setups only",
      {
        smartHost: `${config.delivery.smartHost.host}:${config.delivery.smartHost.port}`,
      },
    );
  }
  const certificate = config.smtp.tls ? loadCertificate(config.smtp.tls) : undefined;
  if (certificate) log.info("STARTTLS certificate", { subject: certificate.subject, validTo: certificate.validTo });
  else log.warn("no TLS certificate configured: STARTTLS is not offered on the inbound listener");

  const domains = config.domains.map((d) => d.name);
  const staticRecords = recordsFromStaticUsers(config.directory.users);
  const spreadsheet = createDirectory(staticRecords);
  const sync: DirectorySync | undefined = config.graph
    ? createDirectorySync({
        read: createGraphReader(config.tenantId, config.graph),
        domains,
        staticRecords,
        store: createDirectoryStateStore(join(config.dataDir, "directory")),
        log,
      })
    : undefined;
  if (!sync) log.info("no Entra ID app configured (graph): recipients come from the spreadsheet import only");
  const directory = () => (sync ? sync.current() : spreadsheet);
  const verifier =
    config.verification.mode === "dynamic"
      ? createCalloutVerifier({
          domains,
          target: {
            ...config.delivery.smartHost,
            tls: config.delivery.tls,
            verifyCertificate: config.delivery.verifyCertificate,
            heloName: config.smtp.hostname,
          },
          ...config.verification.callout,
          log,
        })
      : createStaticVerifier({ domains, directory, fallback: spreadsheet });
  const spool = createSpool(join(config.dataDir, "queue"));
  const tracker = await openSqliteTracker(join(config.dataDir, "tracker.sqlite"), (error) =>
    log.warn("tracker checkpoint thread failed; the tracker checkpoints its WAL itself", { error: error.message }),
  );
  const bayes = config.filters.enabled ? openBayesStoreFor(config) : undefined;
  const scanner = config.filters.enabled ? await createGatewayScanner(config, bayes, log) : undefined;
  const recovered = await spool.recover();
  if (recovered.requeued > 0 || recovered.discardedPartial > 0) log.info("queue recovered", recovered);

  const metrics = createMetrics();
  const eventLoop = monitorEventLoop(); // its timer does not keep the process alive
  const pool = createConnectionPool();
  const resolver = createMxResolver(config.dns.servers);
  const outboundRelay = config.outbound.smartHost;
  const remote: RemoteDelivery = outboundRelay
    ? (_domain, envelope, message) =>
        pool.attempt(
          {
            ...outboundRelay,
            tls: "required",
            verifyCertificate: config.delivery.verifyCertificate,
            heloName: config.smtp.hostname,
          },
          envelope,
          message,
        )
    : createRemoteDelivery({
        resolver,
        mtaSts: createMtaStsPolicies({ resolver }),
        heloName: config.smtp.hostname,
        port: config.outbound.remotePort,
        log,
      });
  const delivery = createDelivery({
    spool,
    attempt: pool.attempt,
    remote,
    bouncer: createBouncer({ spool, reportingHost: config.smtp.hostname, localDomains: domains, log, tracker }),
    tracker,
    metrics,
    smartHostHeader: `${LOOP_GUARD_HEADER}: ${config.tenantId}`,
    target: {
      ...config.delivery.smartHost,
      tls: config.delivery.tls,
      verifyCertificate: config.delivery.verifyCertificate,
      heloName: config.smtp.hostname,
    },
    retry: config.delivery.retry,
    log,
  });
  const smtp = createInboundServer({
    config,
    verifier,
    spool,
    log,
    certificate,
    tracker,
    metrics,
    onQueued: (id, message) => delivery.enqueued(id, message),
    ...(scanner ? { scanner } : {}),
    directory,
    onQuarantined: (id, people, summary) =>
      void releaseRequestsRef.current
        ?.notify(id, people, summary)
        .catch((error: Error) => log.error("quarantine notice failed", { id, error: error.message })),
  });
  const reloader =
    config.smtp.tls && certificate ? watchCertificate(smtp, config.smtp.tls, certificate, log) : undefined;
  const auth = createAuth(config.access);
  // Built before the listener, which notifies recipients of quarantined mail through it.
  const releaseRequestsRef: { current?: ReleaseRequests } = {};
  const quarantine = createQuarantine({
    spool,
    tracker,
    dataDir: config.dataDir,
    onReleased: (id) => delivery.enqueued(id),
    ...(scanner && bayes && config.filters.bayes.learnOnRelease
      ? { learnHam: (raw: Buffer) => scanner.learn(raw, "ham").then(() => undefined) }
      : {}),
    log,
  });
  const releaseRequests = createReleaseRequests({
    spool,
    tracker,
    quarantine,
    dataDir: config.dataDir,
    hostname: config.smtp.hostname,
    linkBaseUrl: config.releaseRequests.linkBaseUrl ?? `https://${config.smtp.hostname}`,
    linkValidDays: config.releaseRequests.linkValidDays,
    notifyAddresses: config.releaseRequests.notify,
    localDomains: domains,
    onQueued: (id) => delivery.enqueued(id),
    log,
  });
  releaseRequestsRef.current = releaseRequests;
  const web = build({
    mtaSts: config.domains,
    directory: { auth, sync, directory },
    tracker: { auth, tracker, quarantine, releaseRequests },
    metrics: async () => {
      const queue: Record<string, number> = {};
      for (const state of ["incoming", "active", "deferred", "hold", "corrupt"] as const)
        queue[state] = (await spool.list(state)).length;
      return metrics.render({
        moat_queue_messages: { help: "messages in the queue, by state", label: "state", values: queue },
        moat_directory_addresses: {
          help: "addresses static verification accepts",
          values: directory()?.size ?? spreadsheet.size,
        },
        ...directorySyncGauges(sync),
        ...eventLoop.scrape(),
        ...(bayes
          ? {
              moat_bayes_learned_messages: {
                help: "messages the Bayes filter has learned, by label (it votes from 200 of each by default)",
                label: "label",
                values: { ...bayes.totals() },
              },
            }
          : {}),
      });
    },
    health: async () => ({
      status: "ok",
      customer: config.customer,
      checks: {
        smtp: "listening",
        verification:
          config.verification.mode === "dynamic"
            ? "dynamic (callout to the smart host)"
            : `static, ${directory()?.size ?? spreadsheet.size} addresses`,
        directory: directoryHealth(sync),
      },
    }),
  });

  await new Promise<void>((resolve, reject) => {
    smtp.once("error", reject);
    smtp.listen(config.smtp.listen.port, config.smtp.listen.host, () => {
      smtp.off("error", reject);
      resolve();
    });
  }).catch(async (error: unknown) => {
    await scanner?.close();
    throw error;
  });
  try {
    await web.listen({ host: config.http.listen.host, port: config.http.listen.port });
  } catch (error) {
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
    await scanner?.close();
    throw error;
  }
  await delivery.start();
  // Retention: a minute after start, then daily.
  const purge = () =>
    void quarantine
      .purge(config.retention)
      .catch((error: Error) => log.error("retention purge failed", { error: error.message }));
  const purgeTimer = setTimeout(purge, 60_000);
  const purgeInterval = setInterval(purge, 24 * 60 * 60 * 1000);
  purgeTimer.unref();
  purgeInterval.unref();
  const schedule: SyncSchedule | undefined = sync
    ? startSyncSchedule({ sync, intervalMinutes: config.directory.syncIntervalMinutes })
    : undefined;

  return {
    smtp: smtp.server.address() as AddressInfo,
    http: web.server.address() as AddressInfo,
    reloadTls() {
      reloader?.reload("SIGHUP");
    },
    directorySync: sync,
    verdictThreadId: () => scanner?.osThreadId(),
    async close() {
      schedule?.stop();
      clearTimeout(purgeTimer);
      clearInterval(purgeInterval);
      reloader?.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      await scanner?.close();
      await delivery.close();
      await pool.close();
      await web.close();
      await tracker.close();
      bayes?.close();
      eventLoop.stop();
    },
  };
}

function directoryHealth(sync: DirectorySync | undefined): string {
  if (!sync) return "spreadsheet import only (no Entra ID app configured)";
  const status = sync.status();
  const synced = status.lastSuccessAt
    ? `synced ${status.lastSuccessAt}`
    : "not synced yet (unknown recipients get 451)";
  return status.lastError ? `${synced}; last run FAILED ${status.lastErrorAt}: ${status.lastError}` : synced;
}

function directorySyncGauges(sync: DirectorySync | undefined): ScrapedSeries {
  if (!sync) return {};
  const status = sync.status();
  return {
    moat_directory_sync_runs: {
      help: "directory sync runs since start, by result",
      label: "result",
      values: { ok: status.runs.ok, failed: status.runs.failed },
    },
    moat_directory_sync_failing: {
      help: "1 while the last directory sync run failed (the previous directory stays in force)",
      values: status.lastError ? 1 : 0,
    },
    moat_directory_last_sync_timestamp_seconds: {
      help: "when the directory in force was synced (0: never)",
      values: status.lastSuccessAt ? Math.floor(Date.parse(status.lastSuccessAt) / 1000) : 0,
    },
  };
}
