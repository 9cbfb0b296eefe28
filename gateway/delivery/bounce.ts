/**
 * Queues the DSN for permanent failures after acceptance (dsn.ts builds it). The bounce is a
 * new message from the null sender to the original sender: to the smart host when the
 * sender is in one of the customer's domains, to the internet otherwise. It is durable
 * before the original is let go. Never for a message from the null sender.
 */
import { Readable } from "node:stream";
import type { Logger } from "../log";
import { bufferStream } from "../queue/queue-file";
import type { QueuedMessage, Spool } from "../queue/spool";
import type { TrackerStore } from "../store/tracker";
import { headerBlock } from "../headers";
import { type DsnFailure, buildDsn } from "./dsn";

/** Enough for any sane header block; the DSN carries headers only. */
const HEADERS_MAX_BYTES = 64 * 1024;

async function readHead(stream: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length >= maxBytes) break;
  }
  stream.destroy();
  return Buffer.concat(chunks).subarray(0, maxBytes).toString("utf8");
}

export interface Bouncer {
  /** The queue id of the DSN, or undefined when none is due (null sender). */
  bounce(message: QueuedMessage, failures: readonly DsnFailure[]): Promise<string | undefined>;
}

export function createBouncer(options: {
  spool: Spool;
  reportingHost: string;
  localDomains: readonly string[];
  log: Logger;
  tracker?: TrackerStore;
}): Bouncer {
  const local = new Set(options.localDomains.map((d) => d.toLowerCase()));
  return {
    async bounce(message, failures) {
      const { envelope } = message;
      if (envelope.mailFrom === "" || failures.length === 0) return undefined;
      const originalHeaders = headerBlock(await readHead(message.openMessage(), HEADERS_MAX_BYTES));
      const dsn = buildDsn({
        reportingHost: options.reportingHost,
        queueId: envelope.id,
        originalSender: envelope.mailFrom,
        arrivalDate: new Date(envelope.receivedAt),
        failures,
        originalHeaders,
      });
      const senderDomain = envelope.mailFrom.slice(envelope.mailFrom.lastIndexOf("@") + 1).toLowerCase();
      const { id } = await options.spool.accept(
        {
          mailFrom: "",
          rcptTo: [envelope.mailFrom],
          ...(local.has(senderDomain) ? {} : { outboundRcpts: [envelope.mailFrom] }),
          receivedAt: new Date().toISOString(),
          client: { ip: "127.0.0.1", helo: options.reportingHost, tls: false },
        },
        Buffer.alloc(0),
        bufferStream(Buffer.from(dsn, "utf8")),
        () => false,
      );
      options.tracker
        ?.recordArrival({
          id,
          receivedAt: Date.now(),
          clientIp: "127.0.0.1",
          helo: options.reportingHost,
          tls: false,
          mailFrom: "",
          recipients: [envelope.mailFrom],
          subject: "Undelivered Mail Returned to Sender",
          size: dsn.length,
          direction: "bounce",
        })
        .catch((error: Error) => options.log.error("tracker write failed", { id, error: error.message }));
      options.log.info("bounce queued", {
        id,
        for: envelope.id,
        to: envelope.mailFrom,
        failed: failures.map((f) => f.recipient).join(","),
      });
      return id;
    },
  };
}
