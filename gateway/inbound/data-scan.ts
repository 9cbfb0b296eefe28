/**
 * smtp-server's scan of the message data (the part after DATA) for the end of the message
 * ("\r\n.\r\n") and for dot-stuffed lines ("\n.." loses a dot), with less copying.
 *
 * smtp-server (3.21.6, pinned: this file replaces one of its internals, SMTPStream's
 * _feedDataStream) holds back the last 4 bytes of every chunk, in case a terminator straddles
 * two socket reads, and joins them to the next chunk with Buffer.concat: a fresh copy of every
 * 64 KB read. It then looks at every byte in a JavaScript loop. For a 25 MB message that was
 * about 100 ms of copying and 90 ms of the loop, on the event loop, out of an accept of 400-550
 * ms (bench/large-message.ts, profiled). Here the bytes held back are written out before the
 * chunk instead of joined to it, the 4 bytes either side of the join are looked at in a small
 * copy of their own, and the rest is searched with Buffer.indexOf("\n.") (native).
 *
 * What it finds, and what it writes to the message stream, are smtp-server's exactly: the same
 * positions are tested with the same rules, in the same order, and each outcome (the end, an
 * escape dot, neither) does what smtp-server does, only with the bytes written in two pieces
 * instead of one. Where that would gain nothing (the first chunk of a message that starts with
 * ".", whose checks are smtp-server's own, and chunks under 16 bytes) smtp-server's own
 * function runs. test/gateway/data-scan.test.ts feeds both the same data cut
 * at every place and compares what comes out.
 */
import type { Writable } from "node:stream";
import { SMTPStream } from "smtp-server/lib/smtp-stream.js";

const DOT = 0x2e;
const LF = 0x0a;
const CR = 0x0d;
const LF_DOT = Buffer.from("\n.", "latin1");
/** Smaller chunks go to smtp-server's own function (the join is then a small copy anyway). */
const SMALL_CHUNK = 16;
const NOTHING_HELD = Buffer.alloc(0);

type Done = (error?: Error) => void;

/** SMTPStream's state and methods the scan uses (internal to smtp-server 3.21.6). */
interface StreamInternals {
  _dataStream: Writable;
  _lastBytes: Buffer | false;
  _atDataStart: boolean;
  _countDataBytes(length: number): void;
  _endDataMode(chunk: Buffer | false, remainder: Buffer, done: Done): void;
  _feedDataStream(chunk: Buffer, done: Done): void;
}

const prototype = SMTPStream.prototype as unknown as StreamInternals;
/** smtp-server's own, for the cases above and for the test that compares the two. */
export const smtpServerFeedDataStream: StreamInternals["_feedDataStream"] = prototype._feedDataStream;

/** What the end of the data or an escape dot at position `i` of head + chunk is, or 0 for neither. */
const TERMINATOR = 1;
const ESCAPE = 2;

/** For a dot at `i` after a line feed: the end ("\r\n.\r\n" from i - 2), an escape (another dot next), or 0. */
function kindAt(bytes: Buffer, i: number): number {
  if (bytes[i - 2] === CR && bytes[i + 1] === CR && bytes[i + 2] === LF) return TERMINATOR;
  return bytes[i + 1] === DOT ? ESCAPE : 0;
}

function feedDataStream(this: StreamInternals, chunk: Buffer, done: Done): void {
  const held = this._lastBytes && this._lastBytes.length > 0 ? this._lastBytes : undefined;
  // smtp-server's own checks at the start of a message (a message that is only ".", one that
  // starts with an escape dot) look at its first bytes joined to those held back.
  if ((this._atDataStart && (held || chunk[0] === DOT)) || chunk.length < SMALL_CHUNK) {
    smtpServerFeedDataStream.call(this, chunk, done);
    return;
  }
  // The data is head + chunk, as smtp-server's concat would have made it; h bytes of head.
  const head = held ?? NOTHING_HELD;
  const h = head.length;
  this._lastBytes = false;
  const dataStream = this._dataStream;

  // smtp-server tests every position i (2 <= i < length - 2) holding a dot that follows a line
  // feed: the end when "\r\n.\r\n" is at i - 2, else an escape when another dot follows.
  let found = -1;
  let kind = 0;
  // Positions whose bytes reach into the head (i < h + 2): in a copy of the 12 bytes there.
  if (h > 0) {
    const join = Buffer.concat([head, chunk.subarray(0, 8)]);
    for (let i = 2; i < h + 2; i++) {
      if (join[i] !== DOT || join[i - 1] !== LF) continue;
      kind = kindAt(join, i);
      if (kind) {
        found = i;
        break;
      }
    }
  }
  // The rest, in the chunk itself: position j = i - h, the line feed at j - 1 >= 1.
  if (!kind) {
    const last = chunk.length - 2;
    for (let lf = chunk.indexOf(LF_DOT, 1); lf >= 0 && lf + 1 < last; lf = chunk.indexOf(LF_DOT, lf + 1)) {
      const j = lf + 1;
      kind = kindAt(chunk, j);
      if (kind) {
        found = j + h;
        break;
      }
    }
  }

  if (kind === TERMINATOR) {
    // Once a message: one copy of what precedes the end, as smtp-server makes it.
    const data = found <= h ? head.subarray(0, found) : Buffer.concat([head, chunk.subarray(0, found - h)]);
    this._countDataBytes(data.length);
    this._endDataMode(data, chunk.subarray(found + 3 - h), done);
    return;
  }
  if (kind === ESCAPE) {
    // Everything before the escape dot is data; the scan goes on after the dot, a turn later.
    this._countDataBytes(found);
    if (found <= h) {
      if (dataStream.writable) dataStream.write(head.subarray(0, found));
    } else {
      if (dataStream.writable) dataStream.write(head);
      if (dataStream.writable) dataStream.write(chunk.subarray(0, found - h));
    }
    if (found + 1 >= h) {
      const rest = chunk.subarray(found + 1 - h);
      setImmediate(() => this._feedDataStream(rest, done));
    } else {
      // The rest still begins in the head: held back again, so that it is head + chunk once more.
      const restOfHead = head.subarray(found + 1);
      setImmediate(() => {
        this._lastBytes = restOfHead;
        this._feedDataStream(chunk, done);
      });
    }
    return;
  }
  // Neither: all but the last 4 bytes are data; those 4 wait for the next chunk.
  this._lastBytes = chunk.subarray(chunk.length - 4);
  this._countDataBytes(h + chunk.length - 4);
  if (!dataStream.writable) return done();
  if (h > 0) dataStream.write(head);
  if (!dataStream.writable) return done();
  const handled = dataStream.write(chunk.subarray(0, chunk.length - 4));
  if (handled || dataStream.destroyed) return done();
  // A stream that the application destroys never drains, it only closes (as smtp-server does).
  const onDrain = () => {
    dataStream.removeListener("drain", onDrain);
    dataStream.removeListener("close", onDrain);
    done();
  };
  dataStream.once("drain", onDrain);
  dataStream.once("close", onDrain);
}

let installed = false;

/** Puts the scan above in smtp-server's place, for every connection of every server (once). */
export function installDataScan(): void {
  if (installed) return;
  installed = true;
  prototype._feedDataStream = feedDataStream;
}
