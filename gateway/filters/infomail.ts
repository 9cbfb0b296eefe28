/**
 * Infomail: newsletters and bulk mail — legitimate, wanted by some, noise for most, and the
 * category admins most often route to a separate folder or quarantine. Scored from signals
 * that bulk senders must or habitually send:
 *
 *   List-Unsubscribe (2), List-Unsubscribe-Post one-click (1), List-Id (1),
 *   Precedence bulk/list/junk (2), a bulk-sending platform's fingerprint header (2),
 *   an unsubscribe link in the body (2), "view in browser" (1), a VERP/bounce-handling
 *   envelope sender (1).
 *
 * INFOMAIL_THRESHOLD (4) or more -> infomail. One signal alone (a person's mail that says
 * "unsubscribe", a forwarded newsletter) stays below it.
 */
import type { Filter } from "./types";

export const INFOMAIL_THRESHOLD = 4;

/** Header names bulk platforms stamp (Mailchimp, SendGrid, Mailgun, SES, Salesforce MC, HubSpot, Brevo, Klaviyo, ...). */
const PLATFORM_HEADERS = [
  "x-mailchimp-campaign",
  "x-mc-user",
  "x-sg-eid",
  "x-mailgun-tag",
  "x-mailgun-sid",
  "x-ses-outgoing",
  "x-sfmc-stack",
  "x-hs-cid",
  "x-mailin-campaign",
  "x-kmail-account",
  "x-campaign",
  "x-campaignid",
  "x-csa-complaints",
  "x-mailjet-campaign",
  "feedback-id",
];
const PLATFORM_MAILERS =
  /mailchimp|sendgrid|mailgun|sendinblue|brevo|hubspot|klaviyo|constant ?contact|campaign ?monitor|mailjet|marketo|exacttarget|salesforce|acoustic|emarsys|cleverreach|mailerlite|phplist|sympa|mailman/i;

const VIEW_IN_BROWSER = /view (it |this (e-?mail|message) )?in (your |a )?(web )?browser|online version/i;

export function createInfomailFilter(): Filter {
  return {
    name: "infomail",
    async run(message) {
      const { headers, links, text, html } = message.parsed;
      const has = (name: string) => headers.has(name);
      const signals: string[] = [];
      let score = 0;
      const add = (points: number, what: string) => {
        score += points;
        signals.push(`${what}(${points})`);
      };
      if (has("list-unsubscribe")) add(2, "List-Unsubscribe");
      if (/one-click/i.test(headers.get("list-unsubscribe-post")?.[0] ?? "")) add(1, "List-Unsubscribe-Post");
      if (has("list-id")) add(1, "List-Id");
      if (/^(bulk|list|junk)$/i.test(headers.get("precedence")?.[0]?.trim() ?? "")) add(2, "Precedence");
      const platform =
        PLATFORM_HEADERS.find((h) => has(h)) ??
        (PLATFORM_MAILERS.test(headers.get("x-mailer")?.[0] ?? "") ? "X-Mailer" : undefined);
      if (platform) add(2, `platform:${platform}`);
      if (links.some((l) => /unsubscribe|abmelden|désinscri|desinscri|afmelden|opt.?out/i.test(`${l.href} ${l.text}`)))
        add(2, "unsubscribe-link");
      // Text and HTML each on their own: joined, a message's bodies would be copied once more.
      if (VIEW_IN_BROWSER.test(text) || VIEW_IN_BROWSER.test(html)) add(1, "view-in-browser");
      if (/^(bounces?[+\-.=]|bnc|.*=.*=.*@)|@(bounces?|em|mail|email|news)\./i.test(message.mailFrom))
        add(1, "bulk-envelope-sender");
      const bulk = score >= INFOMAIL_THRESHOLD;
      return {
        findings:
          score === 0
            ? []
            : [
                {
                  detector: "infomail",
                  ...(bulk ? { category: "infomail" as const } : {}),
                  score,
                  symbol: bulk ? "BULK" : "BULK_SIGNALS",
                  detail: `bulk signals ${score} (threshold ${INFOMAIL_THRESHOLD}): ${signals.join(" ")}`,
                },
              ],
      };
    },
  };
}
