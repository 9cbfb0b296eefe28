/**
 * The inbound SMTP listener: smtp-server options and handlers only. Each handler asks a stage
 * (verifier, spool) and hands the typed result to replies.ts; nothing else here decides.
 *
 * Fails closed: a verifier error becomes 451, a spool error 451; 250 only after the spool
 * says the message is durable.
 */
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";
import type { GatewayConfig } from "../config";
import type { Logger } from "../log";
import { type QueuedMessage, type Spool, SpoolSizeExceededError, newQueueId } from "../queue/spool";
import type { RecipientVerifier } from "../verify/recipients";
import { type ClientNames, createClientNames, knownClientName } from "./client-name";
import { createSessionLimits } from "./limits";
import { installDataScan } from "./data-scan";
import { closeAfterQuit } from "./quit";
import { createPregreetMemory, greetPassedClientsAtOnce } from "./pregreet";
import { receivedHeader } from "./received";
import type { AcceptStage, Metrics } from "../metrics";
import type { TrackerStore } from "../store/tracker";
import { headerValues } from "../headers";
import { createOutboundRelayPolicy } from "./outbound-relay";
import type { Directory } from "../directory/directory";
import type { Scanner } from "../filters/pipeline";
import { createScanStage, trackerVerdict } from "./scan-stage";
import { MESSAGE_TOO_BIG, QUEUE_WRITE_FAILED, SmtpReply, TOO_MANY_RECIPIENTS, queued, recipientReply } from "./replies";

/**
 * Times one message's accept for `moat_accept_seconds`: from the 354 (onData) to the end of its
 * data, to its verdict (when filters are on), to on disk, and to on record with the 250.
 */
function acceptTimer(metrics: Metrics | undefined, data: NodeJS.ReadableStream) {
  const started = performance.now();
  let ended: number | undefined;
  if (metrics) data.once("end", () => (ended = performance.now()));
  return {
    accepted(decidedAt: number | undefined, spooledAt: number) {
      if (!metrics) return;
      const now = performance.now();
      const end = ended ?? spooledAt;
      const observe = (stage: AcceptStage, ms: number) =>
        metrics.observe("moat_accept_seconds", { stage }, Math.max(0, ms) / 1000);
      observe("transfer", end - started);
      if (decidedAt !== undefined) observe("verdict", decidedAt - end);
      observe("spool", spooledAt - (decidedAt ?? end));
      observe("record", now - spooledAt);
      observe("total", now - started);
    },
  };
}

/** RFC 5321 §4.5.3.1.8 asks for at least 100; Postfix allows 1000. */
export const MAX_RECIPIENTS_PER_MESSAGE = 1000;
/** Idle time before a session is dropped (Postfix smtpd_timeout is 300 s). */
const SOCKET_TIMEOUT_MS = 5 * 60 * 1000;
/** How long close() waits for sessions to finish before cutting them. */
const CLOSE_TIMEOUT_MS = 30 * 1000;

export interface InboundOptions {
  readonly config: GatewayConfig;
  readonly verifier: RecipientVerifier;
  readonly spool: Spool;
  readonly log: Logger;
  /**
   * Called once the message is durable, after the 250 has been decided; with the message as
   * delivery would read it back when the spool held it in memory (spool.ts accept()).
   */
  readonly onQueued: (id: string, message?: QueuedMessage) => void;
  /** The tracker record; its failures are logged, never turned into a refusal. */
  readonly tracker?: TrackerStore;
  readonly metrics?: Metrics;
  /** The certificate for STARTTLS (loaded from config.smtp.tls); none: STARTTLS not offered. */
  readonly certificate?: { readonly key: Buffer; readonly cert: Buffer };
  /** Pre-queue filtering (scan-stage.ts); without it every message is queued for delivery. */
  readonly scanner?: Scanner;
  /** Who is internal, for impersonation checks. */
  readonly directory?: () => Directory | undefined;
  /** Called for inbound mail the verdict quarantined, with the recipients who are people (for notices). */
  readonly onQuarantined?: (
    id: string,
    people: readonly string[],
    summary: { from: string; subject: string; category: string },
  ) => void;
}

export function createInboundServer(options: InboundOptions): SMTPServer {
  const { config, verifier, spool, log, onQueued } = options;
  const maxBytes = config.policy.maxMessageBytes;
  const tls = options.certificate;
  const limits = createSessionLimits(config.smtp.limits);
  const relay = createOutboundRelayPolicy({
    enabled: config.outbound.enabled,
    relayFrom: config.outbound.relayFrom,
    tenantId: config.tenantId,
    domains: config.domains.map((d) => d.name),
  });
  /** Per session: the recipients of the current transaction that go to the internet. */
  const outboundRcpts = new Map<string, Set<string>>();

  const clientNames = createClientNames(config.dns.servers);
  const serverOptions: SMTPServerOptions & { resolver: Pick<ClientNames, "reverse"> } = {
    name: config.smtp.hostname,
    // The client's name: forward-confirmed, through the gateway's DNS servers, cached
    // (smtp-server's own lookup is dns.reverse on the system's resolver, unconfirmed, each time).
    resolver: clientNames,
    banner: "Moat",
    size: maxBytes,
    authOptional: true,
    // Port 25 takes no AUTH; without our own certificate STARTTLS is not offered at all
    // rather than with the library's bundled localhost certificate.
    disabledCommands: tls ? ["AUTH"] : ["AUTH", "STARTTLS"],
    ...(tls ? { key: tls.key, cert: tls.cert, minVersion: "TLSv1.2" as const } : {}),
    logger: false,
    socketTimeout: SOCKET_TIMEOUT_MS,
    closeTimeout: CLOSE_TIMEOUT_MS,
    maxClients: config.smtp.limits.maxConnections,

    onConnect(session, callback) {
      options.metrics?.inc("moat_smtp_sessions_total");
      const refused = limits.admitSession(session.id, session.remoteAddress);
      if (refused) options.metrics?.inc("moat_smtp_refusals_total", { reason: "limits" });
      if (refused) log.warn("connection refused by limits", { client: session.remoteAddress, reply: refused.message });
      callback(refused ?? null);
    },

    onClose(session) {
      limits.releaseSession(session.id);
      outboundRcpts.delete(session.id);
    },

    onMailFrom(_address, session, callback) {
      outboundRcpts.delete(session.id);
      const refused = limits.admitMessage(session.remoteAddress);
      if (refused) options.metrics?.inc("moat_smtp_refusals_total", { reason: "limits" });
      if (refused) log.warn("message refused by limits", { client: session.remoteAddress, reply: refused.message });
      callback(refused ?? null);
    },

    onRcptTo(address, session, callback) {
      if (session.envelope.rcptTo.length >= MAX_RECIPIENTS_PER_MESSAGE) {
        callback(TOO_MANY_RECIPIENTS());
        return;
      }
      verifier.verify(address.address).then(
        (verdict) => {
          const mailFrom = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
          if (verdict.kind === "relay-denied" && relay.mayRelay(session.remoteAddress, mailFrom)) {
            outboundRcpts.set(session.id, (outboundRcpts.get(session.id) ?? new Set()).add(address.address));
            callback(null);
            return;
          }
          const reply = recipientReply(verdict);
          if (reply) {
            options.metrics?.inc("moat_smtp_refusals_total", { reason: verdict.kind });
            log.info("recipient refused", {
              client: session.remoteAddress,
              to: address.address,
              reply: `${reply.responseCode} ${reply.message}`,
            });
            track(
              options.tracker?.recordRejection({
                at: Date.now(),
                clientIp: session.remoteAddress,
                mailFrom,
                recipient: address.address,
                reply: `${reply.responseCode} ${reply.message}`,
              }),
            );
          }
          callback(reply ?? null);
        },
        (error: Error) => {
          log.error("recipient verification failed", { to: address.address, error: error.message });
          callback(recipientReply({ kind: "tempfail", address: address.address, reason: error.message }) ?? null);
        },
      );
    },

    onData(stream, session, callback) {
      const timer = acceptTimer(options.metrics, stream);
      const id = newQueueId();
      const rcptTo = session.envelope.rcptTo.map((r) => r.address);
      const outbound = rcptTo.filter((r) => outboundRcpts.get(session.id)?.has(r));
      const clientName = knownClientName(session.clientHostname);
      const prelude = Buffer.from(
        receivedHeader({
          helo: session.hostNameAppearsAs ?? "",
          ...(clientName ? { clientName } : {}),
          clientIp: session.remoteAddress,
          hostname: config.smtp.hostname,
          protocol: protocolOf(session),
          id,
          recipients: rcptTo,
          date: new Date(),
        }),
        "latin1",
      );
      const mailFrom = session.envelope.mailFrom === false ? "" : session.envelope.mailFrom.address;
      const direction: "inbound" | "outbound" = outbound.length > 0 ? "outbound" : "inbound";
      let subject = "";
      const scan = options.scanner
        ? createScanStage(
            options.scanner,
            {
              mailFrom,
              rcptTo,
              clientIp: session.remoteAddress,
              ...(clientName ? { clientName } : {}),
              helo: session.hostNameAppearsAs ?? "",
              tls: Boolean(session.secure),
              direction,
            },
            options.directory ?? (() => undefined),
          )
        : undefined;
      const arrivalOf = (queuedId: string, bytes: number) => ({
        id: queuedId,
        receivedAt: Date.now(),
        clientIp: session.remoteAddress,
        helo: session.hostNameAppearsAs ?? "",
        tls: Boolean(session.secure),
        mailFrom,
        recipients: rcptTo,
        subject,
        size: bytes,
        direction,
      });
      spool
        .accept(
          {
            id,
            mailFrom,
            rcptTo,
            ...(outbound.length > 0 ? { outboundRcpts: outbound } : {}),
            receivedAt: new Date().toISOString(),
            client: { ip: session.remoteAddress, helo: session.hostNameAppearsAs ?? "", tls: Boolean(session.secure) },
          },
          prelude,
          stream,
          () => (stream as unknown as { sizeExceeded?: boolean }).sizeExceeded === true,
          (head) => {
            subject = headerValues(head, "subject")?.[0] ?? "";
            return outbound.length > 0 ? relay.checkTenant(head) : undefined;
          },
          scan?.decide,
        )
        .then(
          ({ id: queuedId, bytes, state, message }) => {
            options.metrics?.inc("moat_messages_accepted_total", { direction });
            const verdict = scan?.verdict();
            log.info("queued", {
              id: queuedId,
              from: mailFrom || "<>",
              rcpts: rcptTo.length,
              bytes,
              client: session.remoteAddress,
              ...(verdict ? { category: verdict.category, action: verdict.action } : {}),
            });
            const arrival = track(
              options.tracker?.recordArrival({
                ...arrivalOf(queuedId, bytes),
                ...(verdict ? { verdict: trackerVerdict(verdict) } : {}),
              }),
            );
            // The 250 and delivery wait for the arrival to be on record (the tracker commits its
            // writes at the end of this event-loop turn), so a crash of the gateway never leaves
            // acknowledged mail without its record, and the delivery's attempts find it.
            const spooledAt = performance.now();
            void arrival.then(() => {
              timer.accepted(scan?.decidedAt(), spooledAt);
              callback(null, queued(queuedId));
              if (state === "incoming") onQueued(queuedId, message);
            });
            if (state === "quarantine" && direction === "inbound" && verdict && options.onQuarantined) {
              const directory = options.directory?.();
              const people = rcptTo.filter((r) => directory?.lookup(r)?.kind === "user");
              if (people.length > 0)
                options.onQuarantined(queuedId, people, { from: mailFrom, subject, category: verdict.category });
            }
          },
          (error: Error) => {
            const verdict = scan?.verdict();
            if (verdict && error instanceof SmtpReply) {
              options.metrics?.inc("moat_smtp_refusals_total", { reason: verdict.action });
              log.info("message refused by verdict", {
                id,
                from: mailFrom || "<>",
                category: verdict.category,
                reply: `${error.responseCode} ${error.message}`,
              });
              if (verdict.action === "reject")
                void track(options.tracker?.recordArrival({ ...arrivalOf(id, 0), verdict: trackerVerdict(verdict) }));
              else
                for (const recipient of rcptTo)
                  void track(
                    options.tracker?.recordRejection({
                      at: Date.now(),
                      clientIp: session.remoteAddress,
                      mailFrom,
                      recipient,
                      reply: `${error.responseCode} ${error.message}`,
                    }),
                  );
              callback(error);
              return;
            }
            if (error instanceof SpoolSizeExceededError) {
              callback(MESSAGE_TOO_BIG(maxBytes));
              return;
            }
            if (error instanceof SmtpReply) {
              options.metrics?.inc("moat_smtp_refusals_total", { reason: "tenant" });
              log.warn("message refused", {
                client: session.remoteAddress,
                from: mailFrom || "<>",
                reply: `${error.responseCode} ${error.message}`,
              });
              callback(error);
              return;
            }
            log.error("queue write failed; answered 451", { client: session.remoteAddress, error: error.message });
            callback(QUEUE_WRITE_FAILED());
          },
        );
    },
  };
  function track(write: Promise<void> | undefined): Promise<void> {
    return (write ?? Promise.resolve()).catch((error: Error) =>
      log.error("tracker write failed", { error: error.message }),
    );
  }

  const server = new SMTPServer(serverOptions);
  greetPassedClientsAtOnce(server, createPregreetMemory()); // a client that waited once is not kept waiting again
  installDataScan(); // the message data scanned for its end with less copying (data-scan.ts)
  closeAfterQuit(); // the connection closed once the 221 is written, as Postfix does (quit.ts)
  server.on("error", (error) => log.warn("smtp session error", { error: error.message }));
  return server;
}

function protocolOf(session: SMTPServerSession): "SMTP" | "ESMTP" | "ESMTPS" {
  if (session.secure) return "ESMTPS";
  return session.openingCommand === "HELO" ? "SMTP" : "ESMTP";
}
