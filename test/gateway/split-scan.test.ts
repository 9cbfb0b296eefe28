/**
 * The fast way through plain body lines (gateway/filters/split-scan.ts) against mailsplit's own
 * splitter: the same message, cut into chunks of every kind (single bytes, a few, about a line,
 * socket-sized reads, mixed), gives the same pieces — each part's headers, each run of body or
 * data bytes, in the same order, cut in the same places — and the same error. The messages are
 * made of what decides where a part ends: nested multiparts, delimiters with trailing
 * whitespace, unclosed parts closed by an outer delimiter, body lines that start with "-" or a
 * bare CR, blank lines, bare LF and bare CR line ends, embedded messages, lines longer than the
 * splitter holds.
 */
import { MailParser } from "mailparser";
import type { Transform } from "node:stream";
import { describe, expect, it } from "vitest";
import { fastBodyLines } from "../../gateway/filters/split-scan";
import { seededRandom } from "../helpers/random";

/** mailsplit's splitter, as mailparser builds it (a dependency of mailparser, not of Moat). */
const Splitter = (new MailParser() as unknown as { splitter: Transform }).splitter.constructor as new (config?: {
  maxChildNodes?: number;
}) => Transform;

interface Piece {
  type: string;
  value?: Buffer;
  node?: object;
  getHeaders?(): Buffer;
}

/** What a splitter makes of `chunks`: its pieces, written out, and its error. */
async function split(chunks: readonly Buffer[], fast: boolean, maxChildNodes?: number): Promise<string[]> {
  const splitter = new Splitter(maxChildNodes === undefined ? undefined : { maxChildNodes });
  if (fast) fastBodyLines(splitter);
  const nodes = new Map<object, number>();
  const nodeOf = (node: object) => nodes.get(node) ?? nodes.set(node, nodes.size).get(node);
  const out: string[] = [];
  splitter.on("data", (piece: Piece) => {
    if (piece.type === "node") out.push(`node ${nodeOf(piece)}: ${piece.getHeaders?.().toString("latin1")}`);
    else out.push(`${piece.type} ${nodeOf(piece.node ?? {})}: ${piece.value?.toString("latin1")}`);
  });
  const finished = new Promise<void>((resolve) => {
    splitter.on("end", () => resolve());
    splitter.on("error", (error: Error) => {
      out.push(`error: ${error.message}`);
      resolve();
    });
  });
  for (const chunk of chunks) {
    if (splitter.destroyed) break;
    if (!splitter.write(chunk))
      await Promise.race([new Promise((resolve) => splitter.once("drain", resolve)), finished]);
  }
  if (!splitter.destroyed) splitter.end();
  await finished;
  return out;
}

type Random = () => number;
const pick = <T>(next: Random, items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;

const BASE64_LINE = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0";

/** A body line; `boundaries` are the open multiparts' boundaries, innermost last. */
function bodyLine(next: Random, boundaries: readonly string[]): string {
  const roll = next();
  if (roll < 0.45) return BASE64_LINE.slice(0, 4 + Math.floor(next() * 72));
  if (roll < 0.55) return "";
  if (roll < 0.62) return pick(next, ["-- ", "--", "-", "--not-a-boundary", "- list item", "---"]);
  if (roll < 0.68) return pick(next, ["\r--x", "\r-", "\r", "\rtext", "\r\r--x"]);
  if (roll < 0.73 && boundaries.length > 0) return `--${pick(next, boundaries)}${pick(next, ["", "--", " ", "x"])}`;
  if (roll < 0.733) return "y".repeat(60_000 + Math.floor(next() * 20_000)); // longer than the splitter holds
  return pick(next, ["Hello, world.", "Subject: not a header here", "  indented", "=3D quoted", "\t"]);
}

function lines(next: Random, boundaries: readonly string[], eol: () => string): string {
  let text = "";
  const count = Math.floor(next() * 12);
  for (let i = 0; i < count; i++) text += bodyLine(next, boundaries) + eol();
  return text;
}

/** A MIME entity: headers, a blank line and a body, nested up to `depth`. */
function entity(next: Random, depth: number, boundaries: readonly string[], eol: () => string): string {
  const kind = depth > 0 ? next() : 1;
  if (kind < 0.45) {
    const boundary = `b${depth}${Math.floor(next() * 1000)}`;
    const inner = [...boundaries, boundary];
    let text = `Content-Type: multipart/mixed; boundary="${boundary}"${eol()}${eol()}${lines(next, boundaries, eol)}`;
    const parts = 1 + Math.floor(next() * 3);
    for (let i = 0; i < parts; i++) {
      text += `--${boundary}${pick(next, ["", "", " ", "\t "])}${eol()}${entity(next, depth - 1, inner, eol)}${eol()}`;
    }
    if (next() < 0.8) text += `--${boundary}--${pick(next, ["", " "])}${eol()}`; // else left unclosed
    return text + lines(next, boundaries, eol);
  }
  if (kind < 0.55) {
    return `Content-Type: message/rfc822${eol()}Content-Disposition: inline${eol()}${eol()}Subject: inner${eol()}${eol()}${lines(next, boundaries, eol)}`;
  }
  const type = pick(next, ["text/plain", "application/octet-stream\r\nContent-Transfer-Encoding: base64"]);
  let body = "";
  const count = Math.floor(next() * (next() < 0.1 ? 3000 : 40));
  for (let i = 0; i < count; i++) body += bodyLine(next, boundaries) + eol();
  return `Content-Type: ${type}${eol()}${eol()}${body}`;
}

function message(next: Random): string {
  const eol = () => pick(next, ["\r\n", "\r\n", "\r\n", "\r\n", "\n", "\r\r\n"]);
  return `From: a@outside.example${eol()}Subject: test${eol()}${entity(next, 3, [], eol)}`;
}

/** `text` cut into chunks of one size class, or of mixed sizes. */
function cut(text: string, next: Random): Buffer[] {
  const bytes = Buffer.from(text, "latin1");
  const size = pick(next, [
    () => 1,
    () => 2 + Math.floor(next() * 6),
    () => 70 + Math.floor(next() * 20),
    () => 65_536,
    () => pick(next, [1, 3, 77, 78, 79, 4_096, 65_536]),
  ]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    // Small chunks of a large message make a slow test and find nothing more.
    const least = bytes.length > 200_000 ? 4_096 : bytes.length > 20_000 ? 64 : 1;
    const length = Math.min(Math.max(size(), least), bytes.length - at);
    chunks.push(bytes.subarray(at, at + length));
    at += length;
  }
  return chunks;
}

describe("the fast way through plain body lines", () => {
  it("splits generated messages into the same pieces as mailsplit, however they are cut", async () => {
    const next = seededRandom(20261206);
    let pieces = 0;
    for (let n = 0; n < 600; n++) {
      const chunks = cut(message(next), next);
      const maxChildNodes = next() < 0.1 ? 2 : undefined; // sometimes a message with too many parts
      const own = await split(chunks, false, maxChildNodes);
      const fast = await split(chunks, true, maxChildNodes);
      expect(fast, `message ${n}`).toEqual(own);
      pieces += own.length;
    }
    expect(pieces).toBeGreaterThan(10_000);
  });

  it("gives a large attachment's body lines to the splitter's own function only where they may hold a boundary", async () => {
    const body = `${BASE64_LINE}\r\n`.repeat(30_000); // 2.3 MB
    const text = `Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n${body}\r\n--b--\r\n`;
    const chunks = cut(text, () => 0.6); // socket-sized reads
    const splitter = new Splitter();
    let own = 0;
    const ownTransform = (splitter as unknown as { _transform: (...args: unknown[]) => void })._transform;
    (splitter as unknown as { _transform: (...args: unknown[]) => void })._transform = function (...args) {
      own++;
      ownTransform.apply(this, args);
    };
    fastBodyLines(splitter);
    let bodyBytes = 0;
    splitter.on("data", (piece: Piece) => {
      if (piece.type === "body") bodyBytes += piece.value?.length ?? 0;
    });
    const ended = new Promise((resolve) => splitter.on("end", resolve));
    for (const chunk of chunks) splitter.write(chunk);
    splitter.end();
    await ended;
    expect(chunks.length).toBeGreaterThan(30);
    expect(own).toBeLessThanOrEqual(2); // the headers' chunk and the one with the closing boundary
    expect(bodyBytes).toBe(body.length); // the line end before the boundary is the boundary's
    expect(await split(chunks, true)).toEqual(await split(chunks, false));
  });
});
