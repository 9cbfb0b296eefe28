/**
 * The one place where stage results become SMTP replies (Haraka's `*_respond`). Texts follow
 * Postfix, so admins and log parsers recognise them; each carries its RFC 3463 enhanced code.
 *
 * smtp-server reads `responseCode` from the error it is handed.
 */
import type { RecipientVerdict } from "../verify/recipients";

export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
    this.name = "SmtpReply";
  }
}

/** undefined means "accept" (smtp-server then answers 250). */
export function recipientReply(verdict: RecipientVerdict): SmtpReply | undefined {
  const address = `<${verdict.address}>`;
  switch (verdict.kind) {
    case "accept":
      return undefined;
    case "relay-denied":
      return new SmtpReply(554, `5.7.1 ${address}: Relay access denied`);
    case "unknown":
      return new SmtpReply(550, `5.1.1 ${address}: Recipient address rejected: unverified address`);
    case "tempfail":
      return new SmtpReply(
        451,
        `4.3.0 ${address}: Recipient address verification is temporarily unavailable; try again later`,
      );
  }
}

export const TOO_MANY_RECIPIENTS = () => new SmtpReply(452, "4.5.3 Error: too many recipients");
export const QUEUE_WRITE_FAILED = () => new SmtpReply(451, "4.3.0 Error: queue file write error; try again later");
export const MESSAGE_TOO_BIG = (limit: number) =>
  new SmtpReply(552, `5.3.4 Error: message exceeds fixed maximum message size ${limit}`);
export const queued = (id: string) => `2.0.0 Ok: queued as ${id}`;
export const MESSAGE_REJECTED = (what: string, id: string) =>
  new SmtpReply(550, `5.7.1 Message rejected ${what} (${id})`);
export const SCAN_UNAVAILABLE = () =>
  new SmtpReply(451, "4.7.1 Message could not be scanned right now; try again later");
