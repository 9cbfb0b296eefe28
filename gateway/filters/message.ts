/**
 * Parses a message once for every detector (mailparser, which survives broken MIME), and pulls
 * out what they share: sender display name and address, the links of the HTML and text parts
 * (href and the text shown), and the attachments with their bytes.
 *
 * Bounded: the parse of a hostile message (nesting, huge headers) is cut off after
 * PARSE_TIMEOUT_MS and reported as MessageParseError, a verdict reason of its own, never a hang.
 */
import { type AddressObject, type Attachment, simpleParser } from "mailparser";

const PARSE_TIMEOUT_MS = 20_000;
/** Links beyond this many are not looked at (a message with thousands is itself a signal). */
const MAX_LINKS = 2_000;

export interface Link {
  readonly href: string;
  /** What the reader sees (the anchor text), "" for bare URLs in text. */
  readonly text: string;
}

export interface ParsedMessage {
  readonly subject: string;
  readonly fromAddress: string;
  readonly fromName: string;
  readonly replyTo: string;
  /** Header name (lower case) -> values in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  readonly text: string;
  readonly html: string;
  readonly links: readonly Link[];
  readonly attachments: readonly Attachment[];
}

export class MessageParseError extends Error {}

function firstAddress(value: AddressObject | AddressObject[] | undefined): { address: string; name: string } {
  const list = Array.isArray(value) ? value : value ? [value] : [];
  for (const object of list)
    for (const entry of object.value) if (entry.address) return { address: entry.address, name: entry.name ?? "" };
  return { address: "", name: "" };
}

function decodeEntities(text: string): string {
  return text
    .replace(/&nbsp;/gi, " ")
    .replace(/&amp;/gi, "&")
    .replace(/&lt;/gi, "<")
    .replace(/&gt;/gi, ">")
    .replace(/&quot;/gi, '"')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n: string) => String.fromCodePoint(Number.parseInt(n, 16)));
}

export function extractLinks(html: string, text: string): Link[] {
  const links: Link[] = [];
  const anchor = /<a\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>([\s\S]*?)<\/a\s*>/gi;
  for (const match of html.matchAll(anchor)) {
    if (links.length >= MAX_LINKS) break;
    const href = decodeEntities((match[1] ?? match[2] ?? match[3] ?? "").trim());
    const shown = decodeEntities((match[4] ?? "").replace(/<[^>]*>/g, " "))
      .replace(/\s+/g, " ")
      .trim();
    links.push({ href, text: shown });
  }
  const seen = new Set(links.map((l) => l.href));
  for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"')\]]+/gi)) {
    if (links.length >= MAX_LINKS) break;
    if (seen.has(match[0])) continue; // the text part repeats the HTML's links
    seen.add(match[0]);
    links.push({ href: match[0], text: "" });
  }
  return links;
}

export async function parseMessage(raw: Buffer): Promise<ParsedMessage> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new MessageParseError(`MIME parsing took longer than ${PARSE_TIMEOUT_MS} ms`)),
      PARSE_TIMEOUT_MS,
    );
  });
  try {
    const mail = await Promise.race([
      simpleParser(raw, {
        skipImageLinks: true,
        skipTextToHtml: true,
        skipTextLinks: true,
        maxHtmlLengthToParse: 2_000_000,
      }),
      timeout,
    ]);
    const headers = new Map<string, string[]>();
    for (const line of mail.headerLines) {
      const values = headers.get(line.key) ?? [];
      values.push(line.line.slice(line.line.indexOf(":") + 1).trim());
      headers.set(line.key, values);
    }
    const from = firstAddress(mail.from);
    const html = typeof mail.html === "string" ? mail.html : "";
    const text = mail.text ?? "";
    return {
      subject: mail.subject ?? "",
      fromAddress: from.address.toLowerCase(),
      fromName: from.name,
      replyTo: firstAddress(mail.replyTo).address.toLowerCase(),
      headers,
      text,
      html,
      links: extractLinks(html, text),
      attachments: mail.attachments,
    };
  } catch (error) {
    if (error instanceof MessageParseError) throw error;
    throw new MessageParseError(`the message cannot be parsed as MIME: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

export function headerOf(message: ParsedMessage, name: string): string | undefined {
  return message.headers.get(name.toLowerCase())?.[0];
}
