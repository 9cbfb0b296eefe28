/**
 * The queue file: how one message is laid out on disk, written (spool.ts accept) and read back.
 *
 * Format: `MOAT2 <json length> <meta offset, 12 digits; 0: none>\n<envelope json>\n
 * <message bytes><meta json>`. The message bytes are exactly what was accepted (our Received
 * header first); the verdict's headers and summary (meta) follow them, found by the offset in
 * the first line. Files of the earlier format `MOAT1 <json length>\n...`, with the verdict in a
 * `<id>.meta` file beside them, are still read. A file that does not parse throws, and the
 * caller sets it aside (corrupt/), never deletes it.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { largeMessageBytes } from "./young-collection";

export interface Envelope {
  readonly id: string;
  /** "" for the null sender (bounces). */
  readonly mailFrom: string;
  /** Recipients still to be delivered. */
  readonly rcptTo: readonly string[];
  /** Those of rcptTo that go to the internet (outbound mail from the tenant, bounces); the rest go to the smart host. */
  readonly outboundRcpts?: readonly string[];
  /** ISO time of acceptance. */
  readonly receivedAt: string;
  readonly client: { readonly ip: string; readonly helo: string; readonly tls: boolean };
}

/** What the verdict left beside the message. */
export interface MessageMeta {
  /** Header lines (without CRLF at the end) added in front of the message on delivery. */
  readonly headers: readonly string[];
  readonly verdict?: Readonly<Record<string, unknown>>;
}

export interface QueuedMessage {
  readonly envelope: Envelope;
  readonly meta?: MessageMeta;
  /** Opens the message bytes (without the spool header). */
  openMessage(): Readable;
  readonly bytes: number;
  /** The message bytes in one buffer, where they are in memory already (a small message). */
  readonly whole?: Buffer;
}

const MAGIC = "MOAT2";
const META_OFFSET_DIGITS = 12;
/** The header line is read in one go; an envelope larger than this is treated as corrupt. */
const HEADER_PREFIX_MAX_BYTES = 32;
const ENVELOPE_MAX_BYTES = 4 * 1024 * 1024;
/** A queue file up to this size is read whole (one read), larger ones streamed from disk. */
const WHOLE_READ_MAX_BYTES = 256 * 1024;
export const NEWLINE = Buffer.from("\n");

/** A queue file as read: its envelope, its verdict, and where its message lies. */
export interface QueueFile {
  readonly envelope: Envelope;
  /** Where the message starts. */
  readonly offset: number;
  /** Where the message ends (the file's size, or where its meta starts). */
  readonly size: number;
  readonly meta: MessageMeta | undefined;
  /** The whole file, when it was small enough to read in one go. */
  readonly whole?: Buffer;
}

/** The queue file's first line; `metaOffset` 0: no verdict at the end. */
export function firstLineOf(jsonLength: number, metaOffset: number): Buffer {
  return Buffer.from(`${MAGIC} ${jsonLength} ${String(metaOffset).padStart(META_OFFSET_DIGITS, "0")}\n`, "latin1");
}

/**
 * `bytes` as a stream of one chunk: what delivery sends of a message held in memory. Not
 * `Readable.from([bytes])`: on Node 24 (V8 13.6, the image's) a buffer streamed from an array
 * that way was never freed by a young-generation collection, only by a full one, so every
 * message's copy piled up between full collections, and V8 counts buffers allocated since the
 * last full collection against the old generation's limit: with the verdict in its own thread
 * the gateway's thread ran a full collection every 0.35 s at 300 msgs/s, started by 2.3 MB of
 * such buffers a young collection. `Readable.from` of the buffer itself is a plain stream,
 * whose buffer a young collection frees; Node 20 frees either (bench/RESULTS.md, the BA session).
 */
export function bufferStream(bytes: Buffer): Readable {
  return Readable.from(bytes);
}

/** An accepted message as delivery would read it back from its file, from the copy in memory. */
export function heldMessage(envelope: Envelope, meta: MessageMeta | undefined, whole: Buffer): QueuedMessage {
  return {
    envelope,
    ...(meta ? { meta } : {}),
    bytes: whole.length,
    whole,
    openMessage: () => (whole.length > 0 ? bufferStream(whole) : Readable.from([])),
  };
}

/** Where the meta offset field is in a file's first line, and its bytes for `metaOffset`. */
export function metaOffsetField(jsonLength: number, metaOffset: number): { position: number; bytes: Buffer } {
  return {
    position: `${MAGIC} ${jsonLength} `.length,
    bytes: Buffer.from(String(metaOffset).padStart(META_OFFSET_DIGITS, "0"), "latin1"),
  };
}

/** The message of a queue file read by `readQueueFile`, with the recipients and verdict in force. */
export function queuedMessage(
  path: string,
  file: QueueFile,
  envelope: Envelope,
  meta: MessageMeta | undefined,
): QueuedMessage {
  const { offset, size, whole } = file;
  if (whole) return heldMessage(envelope, meta, whole.subarray(offset, size));
  return {
    envelope,
    ...(meta ? { meta } : {}),
    bytes: size - offset,
    openMessage: () =>
      size > offset ? Readable.from(fromFile(path, offset, size - 1), { objectMode: false }) : Readable.from([]),
  };
}

/** A message read back from its file (delivery, a release), its reads counted for young-collection.ts. */
async function* fromFile(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(path, { start, end })) {
    largeMessageBytes.handled((chunk as Buffer).length);
    yield chunk as Buffer;
  }
}

/**
 * A queue file's envelope, verdict and where its message lies. A small file (most mail) is
 * read whole in one read and its message served from memory: delivery's read costs one
 * open, stat, read and close instead of four reads and a second open for a stream.
 */
export async function readQueueFile(path: string): Promise<QueueFile> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    let whole: Buffer | undefined;
    if (size <= WHOLE_READ_MAX_BYTES) {
      whole = Buffer.alloc(size);
      let filled = 0;
      while (filled < size) {
        const { bytesRead } = await handle.read(whole, filled, size - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      whole = whole.subarray(0, filled);
    }
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      if (whole) return whole.subarray(position, position + length);
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    };
    const fileSize = whole?.length ?? size;
    const prefix = await readAt(0, HEADER_PREFIX_MAX_BYTES);
    const firstLine = prefix.toString("latin1").split("\n")[0] ?? "";
    const match = /^MOAT(?:1 (\d+)|2 (\d+) (\d{12}))$/.exec(firstLine);
    const length = Number(match?.[1] ?? match?.[2] ?? -1);
    if (!match || length <= 0 || length > ENVELOPE_MAX_BYTES) throw new Error("bad spool header");
    const envelope = JSON.parse((await readAt(firstLine.length + 1, length)).toString("utf8")) as Envelope;
    if (typeof envelope.id !== "string" || !Array.isArray(envelope.rcptTo)) throw new Error("bad envelope");
    const offset = firstLine.length + 1 + length + 1;
    const metaOffset = Number(match[3] ?? 0);
    const found = { envelope, offset, size: fileSize, ...(whole ? { whole } : {}) };
    if (metaOffset === 0) return { ...found, meta: undefined };
    if (metaOffset < offset || metaOffset >= fileSize || fileSize - metaOffset > ENVELOPE_MAX_BYTES)
      throw new Error("bad verdict offset");
    const meta = JSON.parse((await readAt(metaOffset, fileSize - metaOffset)).toString("utf8")) as MessageMeta;
    return { ...found, size: metaOffset, meta };
  } finally {
    await handle.close();
  }
}
