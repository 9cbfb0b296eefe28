/**
 * The MIME parser under `message.ts`: mailparser (3.14.2, pinned: this file uses its internals)
 * with three changes.
 *
 * - Base64 attachments get HeadDecoder, which decodes only what detectors look at (see
 *   message.ts).
 * - Fewer event-loop turns. mailparser hands every piece of the split message (a part's
 *   headers, each run of body lines, the text between parts) to the next turn with setImmediate,
 *   twice, and waits another turn before it ends its splitter: a plain 10 KB message took 6 turns
 *   and one with parts 19. The 250 waits for the verdict, and under load each turn waits behind
 *   every other session's I/O. Here the read loop handles each piece in the turn it is read in,
 *   as mailparser's processChunk does (body into the part's decoder; the decoder ended at the
 *   text between parts; a part's headers by processChunk itself, whose continuation is then only
 *   an error report), at most SYNC_PIECES pieces or SYNC_BYTES of body a turn (a 10 KB message
 *   is about 8 pieces; a large one's are its 64 KB reads) so that a large message still lets the
 *   other sessions run; and the splitter is ended at once. Left: a turn for each attachment (read by
 *   message.ts before the parse goes on) and the one mailparser waits before it collects the text
 *   (so that the text parts' streams have ended). A plain message now takes 1 turn, one with parts 2-3.
 * - mailsplit's splitter goes through a part's plain body lines with Buffer.indexOf instead of
 *   line by line (split-scan.ts).
 */
import { MailParser } from "mailparser";
import { Transform, type TransformCallback } from "node:stream";
import { fastBodyLines } from "./split-scan";

/** Enough for every magic number detectors look for (ISO 9660's is at 32,769). */
export const HEAD_BYTES = 40 * 1024;
/** Pieces, and bytes of body, handled in one event-loop turn before the parse lets others run. */
const SYNC_PIECES = 256;
const SYNC_BYTES = 64 * 1024;

interface ParserNode {
  isAttachment?: boolean;
  encoding?: string;
  contentType?: string;
  decoder?: Transform;
  headers: object;
}

/** A piece of the message from mailsplit's splitter. */
interface SplitPiece {
  type: "node" | "body" | "data";
  value?: Buffer;
}

/** mailparser's state and methods the read loop drives (internal to mailparser 3.14.2). */
interface MailParserInternals {
  splitter: { read(): SplitPiece | null };
  chunkedPassthrough: { end(): void };
  finished: boolean;
  cleanup(done: TransformCallback): void;
  reading: boolean;
  hasFailed: boolean;
  endReceived: boolean;
  waitUntilAttachmentEnd: boolean;
  attachmentCallback: (() => void) | false;
  waitingEnd: ((error?: Error) => void) | false;
  curnode: { decoder?: Transform } | false;
  endStream(): void;
  processChunk(piece: SplitPiece, done: (error?: Error) => void): void;
}

const ARCHIVE_HEAD = [
  Buffer.from("PK\x03\x04", "latin1"),
  Buffer.from("PK\x05\x06", "latin1"),
  Buffer.from("Rar!", "latin1"),
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf]),
];

export const isHtmlLike = (contentType: string, filename: string | undefined) =>
  /html|svg/i.test(contentType) || /\.(s?html?|xhtml|svg)$/i.test(filename ?? "");

/** Whether detectors need an attachment whole (they open archives, look into HTML), from its first bytes. */
export function keptWhole(first: Buffer, contentType: string, filename: string | undefined): boolean {
  return (
    ARCHIVE_HEAD.some((magic) => first.subarray(0, magic.length).equals(magic)) || isHtmlLike(contentType, filename)
  );
}

const LF = 0x0a;
const CR = 0x0d;
const BASE64_TEXT = /[^A-Za-z0-9+/]/g;

/**
 * A base64 decoder for an attachment that decodes its first HEAD_BYTES and, unless the
 * attachment is kept whole, only counts the rest: `size` is then worked out from the number of
 * base64 characters (line breaks and the final padding not counted). Chunks that do not end on a
 * 4-character boundary carry the remainder over, as libbase64 does.
 */
export class HeadDecoder extends Transform {
  private pending = "";
  private decoded = 0;
  private whole: boolean | undefined;
  /** The first decoded bytes, until there are enough to tell an archive (magic numbers). */
  private first = Buffer.alloc(0);
  private skipped = 0;
  private tail = "";
  constructor(
    private readonly contentType: string,
    private readonly filename: string | undefined,
  ) {
    super();
  }

  get size(): number {
    return this.decoded + Math.floor((this.skipped * 3) / 4);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.whole === false && this.decoded >= HEAD_BYTES) {
      this.skipped += this.pending.length; // counted with the rest, not decoded
      this.pending = "";
      let breaks = 0;
      for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) breaks++;
      for (let i = chunk.indexOf(CR); i >= 0; i = chunk.indexOf(CR, i + 1)) breaks++;
      this.skipped += chunk.length - breaks;
      this.tail = (this.tail + chunk.subarray(-4).toString("latin1")).slice(-4);
      return done();
    }
    const text = this.pending + chunk.toString("latin1").replace(BASE64_TEXT, "");
    const usable = text.length - (text.length % 4);
    this.pending = text.slice(usable);
    if (usable > 0) this.emit_(Buffer.from(text.slice(0, usable), "base64"));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.pending.length > 0) this.emit_(Buffer.from(this.pending, "base64"));
    this.skipped -= /=+\s*$/.exec(this.tail)?.[0].trim().length ?? 0;
    done();
  }

  private emit_(bytes: Buffer): void {
    if (this.whole === undefined) {
      this.first = Buffer.concat([this.first, bytes]);
      if (this.first.length >= 4) this.whole = keptWhole(this.first, this.contentType, this.filename);
    }
    this.decoded += bytes.length;
    this.push(bytes);
  }
}

/** mailparser, with HeadDecoder for base64 attachments (see the file comment). */
export class HeadOnlyParser extends MailParser {
  /** An attachment's headers (the object mailparser hands out with it) -> its decoder. */
  readonly decoders = new WeakMap<object, HeadDecoder>();

  constructor() {
    super({
      skipImageLinks: true,
      skipTextToHtml: true,
      skipTextLinks: true,
      maxHtmlLengthToParse: 2_000_000,
      checksumAlgo: false,
    });
    fastBodyLines((this as unknown as { splitter: Transform }).splitter);
  }

  // mailparser's read loop (readData, internal), replaced: see the file comment.
  readData(): void {
    const self = this as unknown as MailParserInternals;
    if (self.hasFailed) return;
    self.reading = true;
    const next = (error?: Error) => {
      if (!error) this.readData();
      else if (typeof self.waitingEnd === "function") self.waitingEnd(error);
      else this.emit("error", error);
    };
    for (let n = 0, bytes = 0; n < SYNC_PIECES && bytes < SYNC_BYTES; n++) {
      const piece = self.splitter.read();
      if (piece === null) {
        self.reading = false; // the splitter's next 'readable' starts the loop again
        if (self.endReceived) self.endStream();
        return;
      }
      const decoder = self.curnode ? self.curnode.decoder : undefined;
      if (piece.type === "body") {
        bytes += piece.value?.length ?? 0;
        if (decoder?.writable && decoder.write(piece.value) === false) {
          decoder.once("drain", () => next());
          return;
        }
      } else if (piece.type === "data") {
        decoder?.end();
        if (self.waitUntilAttachmentEnd) {
          self.attachmentCallback = next; // called once the attachment has been read
          return;
        }
      } else {
        // A part's headers. mailparser's processChunk does all of its work before it returns and
        // only then schedules its continuation (a turn later): the loop goes on now instead, and
        // the continuation is left to report an error, should there be one.
        let failed = false;
        self.processChunk(piece, (error) => {
          if (!error) return;
          failed = true;
          next(error);
        });
        if (failed) return;
      }
    }
    setImmediate(next);
  }

  // mailparser's _flush, without the turn it waits before ending the splitter's input.
  override _flush(done: TransformCallback): void {
    const self = this as unknown as MailParserInternals;
    self.chunkedPassthrough.end();
    if (self.finished) return self.cleanup(done);
    self.waitingEnd = (error) => {
      self.waitingEnd = false;
      if (error) done(error);
      else self.cleanup(done);
    };
  }

  // mailparser's own node factory (createNode, internal): the decoder is swapped before any body arrives.
  createNode(data: { filename?: string }): ParserNode {
    const node = (MailParser.prototype as unknown as { createNode(d: unknown): ParserNode }).createNode.call(
      this,
      data,
    );
    if (node.isAttachment && node.encoding === "base64" && node.decoder) {
      const decoder = new HeadDecoder(node.contentType ?? "", data.filename);
      decoder.on("end", () => {
        (this as unknown as { decoderEnded: boolean }).decoderEnded = true;
      });
      node.decoder = decoder;
      this.decoders.set(node.headers, decoder);
    }
    return node;
  }
}
