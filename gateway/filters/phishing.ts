/**
 * Phishing signals in the links and HTML attachments of a message:
 *
 * - LINK_TEXT_MISMATCH: a link whose text shows a web address or domain on another site than
 *   its href goes to (`<a href="https://evil.test">https://bank.example</a>`);
 * - LINK_LOOKALIKE: a link to a lookalike of one of the customer's domains;
 * - LINK_PUNYCODE_LOOKALIKE: an internationalised (xn--) host that reads like a customer domain
 *   (a punycode host alone is only noted);
 * - LINK_IP_LITERAL: a link to a bare IP address instead of a name;
 * - HTML_CREDENTIAL_FORM: an HTML attachment with a form asking for a password.
 *
 * Each is a `phishing` finding. Links to the customer's own domains never count.
 */
import { lookalikeOf } from "./lookalike";
import type { Filter, Finding } from "./types";

const MAX_FINDINGS = 10;
/** Second-level public suffixes common enough to matter for "same site" (no full PSL here). */
const TWO_PART_SUFFIXES = /\.(co|com|net|org|gov|ac|edu)\.[a-z]{2}$/;

function hostOf(href: string): string | undefined {
  try {
    const url = new URL(href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.hostname.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}

/** example.co.uk from www.login.example.co.uk; the last two labels otherwise. */
export function siteOf(host: string): string {
  const labels = host.replace(/\.$/, "").split(".");
  const keep = TWO_PART_SUFFIXES.test(host) ? 3 : 2;
  return labels.slice(-keep).join(".");
}

/** A domain or URL the reader would take as where the link goes, if the text shows one. */
function shownHost(text: string): string | undefined {
  const url = /\bhttps?:\/\/([a-z0-9.-]+\.[a-z]{2,})/i.exec(text);
  if (url?.[1]) return url[1].toLowerCase();
  const bare = /^(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})\/?$/i.exec(text.trim());
  return bare?.[1]?.toLowerCase();
}

const isIpLiteral = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.startsWith("[");

export function createPhishingFilter(): Filter {
  return {
    name: "phishing",
    async run(message) {
      const findings: Finding[] = [];
      const ours = (host: string) => [...message.domains].some((d) => host === d || host.endsWith(`.${d}`));
      const add = (symbol: string, detail: string, category = true) => {
        if (findings.length < MAX_FINDINGS && !findings.some((f) => f.detail === detail))
          findings.push({
            detector: "phishing",
            ...(category ? { category: "phishing" as const } : {}),
            symbol,
            detail,
          });
      };
      for (const link of message.parsed.links) {
        const host = hostOf(link.href);
        if (!host) continue;
        if (isIpLiteral(host)) {
          add("LINK_IP_LITERAL", `link to a bare IP address: ${link.href.slice(0, 120)}`);
          continue;
        }
        if (ours(host)) continue;
        const shown = shownHost(link.text);
        if (shown && siteOf(shown) !== siteOf(host))
          add("LINK_TEXT_MISMATCH", `link shows ${shown} but goes to ${host}`);
        const imitated = lookalikeOf(host, message.domains) ?? lookalikeOf(siteOf(host), message.domains);
        if (imitated)
          add(
            host.includes("xn--") ? "LINK_PUNYCODE_LOOKALIKE" : "LINK_LOOKALIKE",
            `link to ${host}, a lookalike of ${imitated}`,
          );
        else if (host.includes("xn--")) add("LINK_PUNYCODE", `link to an internationalised host ${host}`, false);
      }
      for (const attachment of message.parsed.attachments) {
        const name = attachment.filename ?? "";
        if (!/\.(s?html?|xhtml|svg)$/i.test(name) && attachment.contentType !== "text/html") continue;
        if (!attachment.content) continue; // over 1 MB: not a login page
        const html = attachment.content.toString("utf8");
        if (/<form\b/i.test(html) && /<input\b[^>]*type\s*=\s*["']?password/i.test(html))
          add("HTML_CREDENTIAL_FORM", `${name || "an HTML attachment"} holds a form asking for a password`);
      }
      return { findings };
    },
  };
}
