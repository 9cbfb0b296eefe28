/**
 * Delivery status notifications (RFC 3464, RFC 3461 §6): the bounce the gateway sends to the
 * envelope sender when a recipient fails permanently after the message was accepted (in
 * session, the gateway refuses instead). Never to the null sender: a bounce of a bounce would
 * loop. Carries the original headers (text/rfc822-headers), not the body.
 */
import { randomBytes } from "node:crypto";
import { rfc5322Date } from "../inbound/received";

export interface DsnFailure {
  readonly recipient: string;
  /** The downstream's reply, or why the gateway gave up. */
  readonly response: string;
}

export interface DsnInput {
  readonly reportingHost: string;
  readonly queueId: string;
  readonly originalSender: string;
  readonly arrivalDate: Date;
  readonly failures: readonly DsnFailure[];
  /** The original message's header block. */
  readonly originalHeaders: string;
  readonly now?: Date;
}

/** The enhanced status code in a reply (`550 5.1.1 ...` -> 5.1.1), or a generic one. */
export function statusOf(response: string): string {
  return /\b([45]\.\d{1,3}\.\d{1,3})\b/.exec(response)?.[1]?.replace(/^4/, "5") ?? "5.0.0";
}

function clean(text: string): string {
  return text.replace(/[\r\n]+/g, " ").trim();
}

export function buildDsn(input: DsnInput): string {
  const now = input.now ?? new Date();
  const boundary = `moat-dsn-${randomBytes(8).toString("hex")}`;
  const recipients = input.failures.map((f) => f.recipient).join(", ");
  const human = [
    `This is the mail gateway at ${input.reportingHost}.`,
    "",
    "Your message could not be delivered to one or more recipients. This is a permanent",
    "error; the message will not be retried.",
    "",
    ...input.failures.map((f) => `<${f.recipient}>: ${clean(f.response)}`),
  ].join("\r\n");
  const perMessage = [
    `Reporting-MTA: dns; ${input.reportingHost}`,
    `X-Moat-Queue-ID: ${input.queueId}`,
    `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`,
  ].join("\r\n");
  const perRecipient = input.failures
    .map((f) =>
      [
        `Final-Recipient: rfc822; ${f.recipient}`,
        "Action: failed",
        `Status: ${statusOf(f.response)}`,
        `Diagnostic-Code: smtp; ${clean(f.response)}`,
      ].join("\r\n"),
    )
    .join("\r\n\r\n");
  return [
    `From: Mail Delivery System <MAILER-DAEMON@${input.reportingHost}>`,
    `To: <${input.originalSender}>`,
    `Subject: Undelivered Mail Returned to Sender`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <${input.queueId}.${randomBytes(4).toString("hex")}@${input.reportingHost}>`,
    "Auto-Submitted: auto-replied",
    "MIME-Version: 1.0",
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    "",
    `Delivery to ${recipients} failed.`,
    "",
    `--${boundary}`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Description: Notification",
    "",
    human,
    "",
    `--${boundary}`,
    "Content-Type: message/delivery-status",
    "Content-Description: Delivery report",
    "",
    perMessage,
    "",
    perRecipient,
    "",
    `--${boundary}`,
    "Content-Type: text/rfc822-headers",
    "Content-Description: Undelivered message headers",
    "",
    input.originalHeaders,
    "",
    `--${boundary}--`,
    "",
  ].join("\r\n");
}
