/**
 * Delivery's dot-stuffing (gateway/delivery/dot-stuffing.ts) against nodemailer's own: the same
 * data, cut into chunks at every kind of place, gives the same bytes on the wire and the same
 * byte counts. What is escaped decides where the receiver sees the end of the data (SMTP
 * smuggling), so the data is made of the pieces that matter there: dots at line starts, bare CR
 * and LF, CRLF split across chunks.
 */
import { PassThrough, Readable } from "node:stream";
import SMTPConnection from "nodemailer/lib/smtp-connection";
import DataStream from "nodemailer/lib/smtp-connection/data-stream";
import { describe, expect, it } from "vitest";
import {
  installDotStuffing,
  needsNoStuffing,
  nodemailerFlush,
  nodemailerTransform,
} from "../../gateway/delivery/dot-stuffing";
import { cutRandomly as cut, randomPieces, seededRandom } from "../helpers/random";

installDotStuffing();

interface Outcome {
  wire: string;
  inByteCount: number;
  outByteCount: number;
  /** How many pieces came out: each one write to the socket. */
  pieces: number;
}

/** Sends `chunks` through a DataStream; with `original`, nodemailer's own transform and end. */
async function send(chunks: readonly (Buffer | string)[], original: boolean): Promise<Outcome> {
  const stream = new DataStream() as DataStream & { inByteCount: number; outByteCount: number };
  if (original)
    Object.assign(stream, { _transform: nodemailerTransform, _flush: nodemailerFlush } satisfies {
      _transform: typeof nodemailerTransform;
      _flush: typeof nodemailerFlush;
    });
  const out: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => out.push(chunk));
  const ended = new Promise<void>((resolve) => stream.on("end", resolve));
  Readable.from(chunks, { objectMode: true }).pipe(stream);
  await ended;
  const { inByteCount, outByteCount } = stream;
  return { wire: Buffer.concat(out).toString("latin1"), inByteCount, outByteCount, pieces: out.length };
}

const PIECES = [
  "a",
  "Hello, world",
  ".",
  "..",
  "\r\n",
  "\r\n",
  "\r\n",
  "\n",
  "\r",
  "\r\n.",
  ".\r\n",
  "\r.\r",
  "\n.\n",
  "\r\n.\r\n",
  "x".repeat(300),
];

/** The same bytes and counts as nodemailer's, in no more pieces. */
async function same(chunks: readonly (Buffer | string)[]): Promise<Outcome> {
  const [theirs, ours] = [await send(chunks, true), await send(chunks, false)];
  expect({ ...ours, pieces: 0 }).toEqual({ ...theirs, pieces: 0 });
  expect(ours.pieces).toBeLessThanOrEqual(theirs.pieces);
  return ours;
}

describe("delivery's dot-stuffing", () => {
  it("sends what nodemailer sends, however the data is cut", async () => {
    const next = seededRandom(20261207);
    for (let n = 0; n < 1500; n++) await same(cut(randomPieces(next, PIECES), next));
  }, 120_000);

  it("escapes dots and mends bare line ends across a chunk boundary, at every offset", async () => {
    const body = "Subject: hi\r\n\r\n" + "line of text\r\n".repeat(4);
    for (const tail of [".dot\r\n", "\r.\r\nx", "bare\nlf\r\n", "cr\r\r\n", "\r\n..\r\n"]) {
      const bytes = Buffer.from(body + tail, "latin1");
      for (let at = 1; at < bytes.length; at++) await same([bytes.subarray(0, at), bytes.subarray(at)]);
    }
    // Nothing to escape or mend: the bytes go out as they are, the end of the data in the same
    // piece (one write to the socket), where nodemailer sends it alone.
    const plain = await same([Buffer.from(body, "latin1")]);
    expect(plain.wire).toBe(`${body}.\r\n`);
    expect(plain.pieces).toBe(1);
    expect((await send([Buffer.from(body, "latin1")], true)).pieces).toBe(2);
    const inParts = await same([Buffer.from(body.slice(0, 30), "latin1"), Buffer.from(body.slice(30), "latin1")]);
    expect(inParts.pieces).toBe(2);
    // An empty message is the end of the data alone, as nodemailer sends it.
    expect((await same([])).wire).toBe("\r\n.\r\n");
    // A dot starting a line is doubled, a bare CR or LF becomes CRLF (SMTP smuggling).
    expect((await same([Buffer.from("a\r\n.\r\n", "latin1")])).wire).toBe("a\r\n..\r\n.\r\n");
    expect((await same([Buffer.from("a\r.\rb", "latin1")])).wire).toBe("a\r\n..\r\nb\r\n.\r\n");
    expect((await same([Buffer.from("a\nb", "latin1")])).wire).toBe("a\r\nb\r\n.\r\n");
    // Strings and empty chunks are nodemailer's to handle.
    await same(["a\r\n", Buffer.alloc(0), ".b\r\n"]);
  }, 60_000);

  it("is what nodemailer's SMTP connection sends its messages through", () => {
    // The stream SMTPConnection makes for a message (nodemailer 10.6.0's internals).
    const connection = new SMTPConnection({}) as unknown as {
      _envelope: unknown;
      _socket: PassThrough;
      _responseActions: unknown[];
      _createSendStream(callback: () => void): { _transform: unknown };
    };
    connection._envelope = { accepted: [] };
    connection._socket = new PassThrough();
    connection._responseActions = [];
    const stream = connection._createSendStream(() => undefined);
    expect(stream).toBeInstanceOf(DataStream);
    expect(stream._transform).not.toBe(nodemailerTransform);
  });

  it("takes the fast path for ordinary lines and only for them", () => {
    const lines = Buffer.from("Subject: hi\r\n\r\nThe figures are attached.\r\n", "latin1");
    expect(needsNoStuffing(lines, false)).toBe(true);
    expect(needsNoStuffing(lines, 0x0a)).toBe(true);
    // A CR at the very end is the next chunk's to judge; after it, only an LF passes.
    expect(needsNoStuffing(Buffer.from("abc\r", "latin1"), false)).toBe(true);
    expect(needsNoStuffing(Buffer.from("\nabc", "latin1"), 0x0d)).toBe(true);
    expect(needsNoStuffing(Buffer.from("abc", "latin1"), 0x0d)).toBe(false);
    expect(needsNoStuffing(Buffer.from("\nabc", "latin1"), 0x61)).toBe(false);
    expect(needsNoStuffing(Buffer.from(".abc", "latin1"), false)).toBe(false);
    expect(needsNoStuffing(Buffer.from(".abc", "latin1"), 0x0a)).toBe(false);
    expect(needsNoStuffing(Buffer.from(".abc", "latin1"), 0x61)).toBe(true);
    expect(needsNoStuffing(Buffer.from("a\r\n.b", "latin1"), false)).toBe(false);
    expect(needsNoStuffing(Buffer.from("a\rb\r\n", "latin1"), false)).toBe(false);
    expect(needsNoStuffing(Buffer.from("a\r\nb\nc", "latin1"), false)).toBe(false);
  });
});
