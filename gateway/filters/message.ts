/**
 * Parses a message once for every detector (mailparser's streaming parser, which survives
 * broken MIME), and pulls out what they share: sender display name and address, the links of
 * the HTML and text parts (href and the text shown), and the attachments.
 *
 * Memory stays near the message size whatever it carries: an attachment's bytes are kept
 * whole only where a detector needs them — archives up to ARCHIVE_KEEP_MAX_BYTES (they are
 * opened), HTML up to HTML_KEEP_MAX_BYTES (forms are looked for) — and otherwise only its first
 * HEAD_BYTES (the true type is in the first bytes) and its size. A base64 attachment that is
 * not kept whole is decoded only that far; the rest is counted, not decoded (most of a large
 * message's parse time was decoding what nobody looked at). Text and HTML bodies beyond
 * BODY_MAX_CHARS are cut for the link and content checks.
 *
 * Bounded: the parse of a hostile message (nesting, huge headers) is cut off PARSE_TIMEOUT_MS
 * after the message has arrived whole and reported as MessageParseError, a verdict reason of its
 * own, never a hang. The parser itself (mailparser, with a read loop that takes fewer event-loop
 * turns) is in mime-parser.ts.
 */
import type { AddressObject } from "mailparser";
import type { Readable } from "node:stream";
import { HEAD_BYTES, type HeadDecoder, HeadOnlyParser, isHtmlLike, keptWhole } from "./mime-parser";
import { type MessageSource, bufferSource } from "./source";

const PARSE_TIMEOUT_MS = 20_000;
/** Links beyond this many are not looked at (a message with thousands is itself a signal). */
const MAX_LINKS = 2_000;
export const ARCHIVE_KEEP_MAX_BYTES = 25 * 1024 * 1024;
const HTML_KEEP_MAX_BYTES = 1024 * 1024;
const BODY_MAX_CHARS = 2_000_000;

export interface AttachmentInfo {
  readonly filename: string | undefined;
  readonly contentType: string;
  readonly size: number;
  /** The first bytes (up to 40 KB). */
  readonly head: Buffer;
  /** The whole content, for archives and HTML within their limits; undefined otherwise. */
  readonly content: Buffer | undefined;
}

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
  readonly attachments: readonly AttachmentInfo[];
}

export class MessageParseError extends Error {}

function firstAddress(value: AddressObject | AddressObject[] | undefined): { address: string; name: string } {
  const list = Array.isArray(value) ? value : value ? [value] : [];
  for (const object of list)
    for (const entry of object.value) if (entry.address) return { address: entry.address, name: entry.name ?? "" };
  return { address: "", name: "" };
}

function decodeEntities(text: string): string {
  if (!text.includes("&")) return text; // most links and anchor texts: no copies
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

/** Reads an attachment stream keeping what detectors need (see the file comment). */
async function readAttachment(
  stream: Readable,
  contentType: string,
  filename: string | undefined,
  decoder: HeadDecoder | undefined,
) {
  const chunks: Buffer[] = [];
  let size = 0;
  let kept = 0;
  let keepWhole: boolean | undefined;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (keepWhole === undefined && size >= 4)
      keepWhole = keptWhole(Buffer.concat([...chunks, chunk]), contentType, filename);
    const limit = keepWhole ? ARCHIVE_KEEP_MAX_BYTES + 1 : HEAD_BYTES;
    if (kept < limit) {
      const part = chunk.subarray(0, limit - kept);
      chunks.push(part);
      kept += part.length;
    }
  }
  if (decoder) size = decoder.size; // what it counted without decoding
  const all = Buffer.concat(chunks);
  const whole = keepWhole && all.length === size && (!isHtmlLike(contentType, filename) || size <= HTML_KEEP_MAX_BYTES);
  return { filename, contentType, size, head: all.subarray(0, HEAD_BYTES), content: whole ? all : undefined };
}

/** Parses a message, in memory or arriving (the parse then runs during the transfer). */
export async function parseMessage(
  message: Buffer | MessageSource,
  parser = new HeadOnlyParser(), // tests compare the read loop with mailparser's own
): Promise<ParsedMessage> {
  const input = Buffer.isBuffer(message) ? bufferSource(message) : message;
  const attachments: AttachmentInfo[] = [];
  const reads: Promise<void>[] = [];
  let text = "";
  let html = "";
  let subject = "";
  let from: { address: string; name: string } = { address: "", name: "" };
  let replyTo = "";
  const headers = new Map<string, string[]>();
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const source = input.open();
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on("headers", (map: Map<string, unknown>) => {
      subject = typeof map.get("subject") === "string" ? (map.get("subject") as string) : "";
      from = firstAddress(map.get("from") as AddressObject | undefined);
      replyTo = firstAddress(map.get("reply-to") as AddressObject | undefined).address.toLowerCase();
    });
    parser.on("headerLines", (lines: { key: string; line: string }[]) => {
      for (const line of lines) {
        const values = headers.get(line.key) ?? [];
        values.push(line.line.slice(line.line.indexOf(":") + 1).trim());
        headers.set(line.key, values);
      }
    });
    parser.on(
      "data",
      (data: {
        type: string;
        text?: string;
        html?: string | false;
        content?: Readable;
        contentType?: string;
        filename?: string;
        headers?: object;
        release?: () => void;
      }) => {
        if (data.type === "text") {
          text = (data.text ?? "").slice(0, BODY_MAX_CHARS);
          html = typeof data.html === "string" ? data.html.slice(0, BODY_MAX_CHARS) : "";
          return;
        }
        if (data.type === "attachment" && data.content) {
          reads.push(
            readAttachment(
              data.content,
              data.contentType ?? "application/octet-stream",
              data.filename,
              data.headers ? parser.decoders.get(data.headers) : undefined,
            ).then((info) => {
              attachments.push(info);
              data.release?.();
            }),
          );
        }
      },
    );
    parser.on("end", () => resolve());
    parser.on("error", reject);
    // The clock starts when the message is all in: a slow sender is not a slow parse.
    input.complete.then(
      () => {
        if (finished) return;
        timer = setTimeout(() => {
          parser.destroy();
          reject(new MessageParseError(`MIME parsing took longer than ${PARSE_TIMEOUT_MS} ms`));
        }, PARSE_TIMEOUT_MS);
      },
      () => undefined, // the source fails too, and with it the parse
    );
  });
  try {
    source.on("error", (error) => parser.destroy(error));
    source.pipe(parser);
    await parsed;
    await Promise.all(reads);
    return {
      subject,
      fromAddress: from.address.toLowerCase(),
      fromName: from.name,
      replyTo,
      headers,
      text,
      html,
      links: extractLinks(html, text),
      attachments,
    };
  } catch (error) {
    if (error instanceof MessageParseError) throw error;
    throw new MessageParseError(`the message cannot be parsed as MIME: ${(error as Error).message}`);
  } finally {
    finished = true;
    clearTimeout(timer);
    source.destroy();
  }
}

export function headerOf(message: ParsedMessage, name: string): string | undefined {
  return message.headers.get(name.toLowerCase())?.[0];
}
