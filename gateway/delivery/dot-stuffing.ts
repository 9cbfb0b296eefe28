/**
 * nodemailer's dot-stuffing of the message it sends, with a fast path for the usual chunk.
 *
 * nodemailer (10.6.0, pinned: this file replaces one of its internals, DataStream's _transform)
 * escapes a dot at the start of a line and turns a bare CR or LF into CRLF (a receiver that
 * took a lone CR or LF for a line end could otherwise be made to see the end of the data:
 * SMTP smuggling). It does so by looking at every byte in a JavaScript loop: about 50 µs of the
 * event loop for a 12.5 KB message (bench/RESULTS.md, the AO session), on every delivery.
 *
 * Most chunks need none of it: every CR is followed by LF, every LF follows a CR, and no line
 * starts with a dot. `needsNoStuffing` checks that with native searches (Buffer.indexOf, one
 * call a line), and such a chunk is passed on as it is, with the byte counts and the last byte
 * kept as nodemailer's loop keeps them when it finds nothing to insert. Any other chunk, and
 * anything that is not a non-empty Buffer, goes to nodemailer's own function, so what is sent
 * is nodemailer's exactly.
 *
 * And the end of the data (".\r\n" after the last line) goes out with the message's last
 * chunk: nodemailer pushes it alone when the stream ends, one more write to the socket (a system
 * call) for every message. Here a chunk the fast path takes is held until the next one comes or
 * the stream ends, and the end is pushed joined to it; the end is nodemailer's, chosen by the
 * last byte as its _flush chooses it. test/gateway/dot-stuffing.test.ts sends the same data, cut
 * at every kind of place, through both and compares what comes out.
 */
import type { TransformCallback } from "node:stream";
import DataStream from "nodemailer/lib/smtp-connection/data-stream";

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const LF_DOT = Buffer.from("\n.", "latin1");

/** The chunk the fast path holds back for the end of the data (see above). */
const HELD = Symbol("moat.heldChunk");

/** DataStream's state and methods the fast path uses (internal to nodemailer 10.6.0). */
interface DataStreamInternals {
  inByteCount: number;
  outByteCount: number;
  /** The last byte of the previous chunk; false before the first. */
  lastByte: number | false;
  [HELD]?: Buffer | undefined;
  push(chunk: Buffer): boolean;
  _transform(chunk: unknown, encoding: BufferEncoding, done: TransformCallback): void;
  _flush(done: TransformCallback): void;
}

const prototype = DataStream.prototype as unknown as DataStreamInternals;
/** nodemailer's own, for every chunk the fast path does not take, and for the test. */
export const nodemailerTransform: DataStreamInternals["_transform"] = prototype._transform;
/** nodemailer's own end of the data, for the test. */
export const nodemailerFlush: DataStreamInternals["_flush"] = prototype._flush;

/**
 * True when nodemailer's loop would insert nothing into `chunk`, coming after `lastByte`: no
 * dot at the start of a line, no CR without an LF after it (one at the very end is the next
 * chunk's to judge, as in nodemailer's loop), no LF without a CR before it.
 */
export function needsNoStuffing(chunk: Buffer, lastByte: number | false): boolean {
  const first = chunk[0];
  if (lastByte === CR ? first !== LF : first === LF) return false;
  if (first === DOT && (lastByte === LF || lastByte === false)) return false;
  if (chunk.indexOf(LF_DOT) !== -1) return false;
  const last = chunk.length - 1;
  for (let i = chunk.indexOf(CR); i !== -1 && i < last; i = chunk.indexOf(CR, i + 2))
    if (chunk[i + 1] !== LF) return false;
  for (let i = chunk.indexOf(LF, 1); i !== -1; i = chunk.indexOf(LF, i + 1)) if (chunk[i - 1] !== CR) return false;
  return true;
}

/** Pushes the chunk held back, if there is one. */
function release(stream: DataStreamInternals): void {
  const held = stream[HELD];
  if (!held) return;
  stream[HELD] = undefined;
  stream.push(held);
}

function transform(this: DataStreamInternals, chunk: unknown, encoding: BufferEncoding, done: TransformCallback) {
  if (!Buffer.isBuffer(chunk) || chunk.length === 0 || !needsNoStuffing(chunk, this.lastByte)) {
    release(this);
    nodemailerTransform.call(this, chunk, encoding, done);
    return;
  }
  this.inByteCount += chunk.length;
  this.outByteCount += chunk.length;
  this.lastByte = chunk[chunk.length - 1] as number;
  release(this);
  this[HELD] = chunk;
  done();
}

/** The ends of the data nodemailer's _flush chooses from (made once; only ever read). */
const END_AFTER_LF = Buffer.from(".\r\n");
const END_AFTER_CR = Buffer.from("\n.\r\n");
const END_AFTER_OTHER = Buffer.from("\r\n.\r\n");

/** The end of the data as nodemailer's _flush makes it, after the last byte sent. */
function endOfData(lastByte: number | false): Buffer {
  if (lastByte === LF) return END_AFTER_LF;
  if (lastByte === CR) return END_AFTER_CR;
  return END_AFTER_OTHER;
}

function flush(this: DataStreamInternals, done: TransformCallback) {
  const held = this[HELD];
  this[HELD] = undefined;
  const end = endOfData(this.lastByte);
  this.outByteCount += end.length;
  this.push(held ? Buffer.concat([held, end]) : end);
  done();
}

let installed = false;

/** Puts the fast path in nodemailer's place, for every message every connection sends (once). */
export function installDotStuffing(): void {
  if (installed) return;
  installed = true;
  prototype._transform = transform;
  prototype._flush = flush;
}
