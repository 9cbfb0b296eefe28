/**
 * The durable spool. A message's state is the directory its file sits in, as in Postfix:
 *
 *   tmp/       being received; never acknowledged; removed at start-up
 *   incoming/  acknowledged (250 sent), waiting for delivery
 *   active/    a delivery attempt is running; moved back to incoming at start-up
 *   deferred/  a temporary failure; the file's mtime is the time of the next attempt
 *   hold/      kept, not delivered (permanent failure awaiting bounce handling, an engine that
 *              could not scan it, or by admin)
 *   quarantine/ kept, not delivered: the verdict quarantined it (released by moving it to incoming/)
 *   corrupt/   unreadable; set aside, never deleted
 *
 * accept() writes envelope + message to tmp/ (batched-writer.ts: the socket is read while the
 * disk writes), fsyncs the file, renames it into incoming/ and
 * fsyncs the directory; only then may the caller answer 250. Any failure before that leaves
 * no file in incoming/ and throws, and the caller answers 451.
 *
 * With `decide`, the message is judged before it is acknowledged (pre-queue filtering). The
 * verdict starts when the transfer does and reads the message as it arrives (arriving.ts); the
 * spool waits for both the decision and the message being durable in tmp/. The decision names
 * the state it goes to, or discards it (delete), or refuses it (reject, tempfail: nothing kept,
 * the error is thrown). A message that never arrives whole is refused whatever the verdict
 * would have been. A refused message is never synced at all.
 *
 * Headers the verdict adds on delivery (Authentication-Results) and the verdict summary go at
 * the end of the same file, after the message, with their offset in the file's first line, so
 * one fsync makes message and verdict durable together (a small message is synced once, after
 * the decision; a large one's data is synced while the verdict finishes, then once more). The
 * message bytes are never changed (a release delivers the original).
 *
 * File format: `MOAT2 <json length> <meta offset, 12 digits; 0: none>\n<envelope json>\n
 * <message bytes><meta json>`. Files of the earlier format `MOAT1 <json length>\n...`, with
 * the verdict in a `<id>.meta` file beside them, are still read and moved.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { MessageSource } from "../filters/source";
import { arrivingMessage } from "./arriving";
import { coalescedDirectorySync, fsyncDirectory, readFileText, writeAtomically } from "./files";
import { batchedWriter } from "./batched-writer";

export const QUEUE_STATES = ["tmp", "incoming", "active", "deferred", "hold", "quarantine", "corrupt"] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

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

export type SpoolDecision =
  | { readonly to: "incoming" | "quarantine" | "hold"; readonly meta?: MessageMeta }
  | { readonly discard: true }
  | { readonly refuse: Error };

export interface QueuedMessage {
  readonly envelope: Envelope;
  readonly meta?: MessageMeta;
  /** Opens the message bytes (without the spool header). */
  openMessage(): Readable;
  readonly bytes: number;
}

const MAGIC = "MOAT2";
const META_OFFSET_DIGITS = 12;
/** The header line is read in one go; an envelope larger than this is treated as corrupt. */
const HEADER_PREFIX_MAX_BYTES = 32;
const ENVELOPE_MAX_BYTES = 4 * 1024 * 1024;
/** How much of the message start `inspect` gets (headers live there). */
export const HEAD_MAX_BYTES = 256 * 1024;
/** A queue file up to this size is read whole (one read), larger ones streamed from disk. */
const WHOLE_READ_MAX_BYTES = 256 * 1024;
const NEWLINE = Buffer.from("\n");

export class SpoolSizeExceededError extends Error {}

/** Random bytes for ids, drawn from the system 1 KB at a time (one call per id cost ~25 µs). */
let entropy = Buffer.alloc(0);
function randomPart(bytes: number): string {
  if (entropy.length < bytes) entropy = randomBytes(1024);
  const part = entropy.subarray(0, bytes);
  entropy = entropy.subarray(bytes);
  return part.toString("hex").toUpperCase();
}

export function newQueueId(now = Date.now()): string {
  return `${now.toString(36).toUpperCase().padStart(9, "0")}${randomPart(5)}`;
}

export interface Spool {
  readonly root: string;
  dir(state: QueueState): string;
  /** Creates the state directories; clears tmp/; moves active/ back to incoming/. */
  recover(): Promise<{ requeued: number; discardedPartial: number }>;
  /**
   * `inspect` sees the first HEAD_MAX_BYTES of the message once it is all in, before it is
   * made durable; an error it returns refuses the message (nothing is kept) and is thrown.
   */
  accept(
    envelope: Omit<Envelope, "id"> & { id?: string },
    prelude: Buffer,
    body: Readable,
    isOversized: () => boolean,
    inspect?: (head: Buffer) => Error | undefined,
    decide?: (message: MessageSource, id: string) => Promise<SpoolDecision>,
  ): Promise<{ id: string; bytes: number; state: "incoming" | "quarantine" | "hold" | "discarded" }>;
  list(state: QueueState): Promise<string[]>;
  read(state: QueueState, id: string): Promise<QueuedMessage>;
  move(id: string, from: QueueState, to: QueueState): Promise<void>;
  /**
   * Delivery's claim on a message: the move into active/ without a directory sync. A rename is
   * atomic, and after a crash recover() puts whatever is in active/ back into incoming/, so an
   * undone claim only means the message is tried again — the sync would buy nothing.
   */
  claim(id: string, from: "incoming" | "deferred"): Promise<void>;
  /** Moves to deferred/ with the next attempt time, optionally narrowing the recipients. */
  defer(id: string, from: QueueState, nextAttemptAt: number, remaining?: readonly string[]): Promise<void>;
  /** Due time of a deferred message (its mtime). */
  dueAt(id: string): Promise<number>;
  /** When the file last changed state (its mtime; for deferred/ that is the due time). */
  modifiedAt(state: QueueState, id: string): Promise<number>;
  /**
   * Deletes a message. `sync: false` (delivery, once every recipient is done) skips the
   * directory sync: after a crash the message can only come back and be delivered twice, as
   * with an undone claim, never be lost.
   */
  remove(id: string, from: QueueState, options?: { readonly sync?: boolean }): Promise<void>;
}

export function createSpool(root: string): Spool {
  const dir = (state: QueueState) => join(root, state);
  const file = (state: QueueState, id: string) => join(dir(state), id);
  /** Recipients narrowed after a partial delivery live beside the file. */
  const rcptFile = (state: QueueState, id: string) => join(dir(state), `${id}.rcpt`);
  const metaFile = (state: QueueState, id: string) => join(dir(state), `${id}.meta`);
  const syncIncoming = coalescedDirectorySync(dir("incoming"));
  /**
   * Ids with a .rcpt or .meta file beside them (found by recover(), or written since), so the
   * usual message — none — costs no failing rename, unlink or open per step. Until recover() has
   * looked, every id may have them.
   */
  let withCompanions: Set<string> | undefined;
  const mayHaveCompanions = (id: string) => withCompanions?.has(id) ?? true;

  /**
   * A queue file's envelope, verdict and where its message lies. A small file (most mail) is
   * read whole in one read and its message served from memory: delivery's read costs one
   * open, stat, read and close instead of four reads and a second open for a stream.
   */
  const readQueueFile = async (
    path: string,
  ): Promise<{ envelope: Envelope; offset: number; size: number; meta: MessageMeta | undefined; whole?: Buffer }> => {
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
  };

  const spool: Spool = {
    root,
    dir,

    async recover() {
      for (const state of QUEUE_STATES) await mkdir(dir(state), { recursive: true, mode: 0o700 });
      const partial = await readdir(dir("tmp"));
      for (const name of partial) await rm(join(dir("tmp"), name), { force: true });
      const found = new Set<string>();
      for (const state of QUEUE_STATES)
        for (const name of await readdir(dir(state)))
          if (name.endsWith(".rcpt") || name.endsWith(".meta")) found.add(name.slice(0, -5));
      withCompanions = found;
      const active = await spool.list("active");
      for (const id of active) await spool.move(id, "active", "incoming");
      return { requeued: active.length, discardedPartial: partial.length };
    },

    async accept(partialEnvelope, prelude, body, isOversized, inspect, decide) {
      const id = partialEnvelope.id ?? newQueueId();
      const envelope: Envelope = { ...partialEnvelope, id };
      const json = Buffer.from(JSON.stringify(envelope), "utf8");
      const tmp = file("tmp", id);
      const handle = await open(tmp, "wx", 0o600);
      const firstLine = `${MAGIC} ${json.length} ${"0".repeat(META_OFFSET_DIGITS)}\n`;
      const headerLength = Buffer.byteLength(firstLine) + json.length + 1;
      let bytes = 0;
      const head: Buffer[] = [];
      let headBytes = 0;
      // The message starts after the spool's header; the verdict reads it from there as it comes.
      const arriving = decide ? arrivingMessage(tmp, headerLength, HEAD_MAX_BYTES) : undefined;
      const deciding = arriving && decide ? decide(arriving.source, id) : undefined;
      deciding?.catch(() => undefined); // awaited below, or abandoned with a refused message
      const header = Buffer.concat([Buffer.from(firstLine, "latin1"), json, NEWLINE]);
      let early = 0; // the first chunks, which the verdict had from memory before they were written
      const writer = batchedWriter(handle, (chunk) => {
        if (chunk === header) return;
        if (early > 0) early--;
        else arriving?.appended(chunk);
      });
      const write = (chunk: Buffer) => {
        if (arriving?.received(chunk)) early++;
        return writer.write(chunk);
      };
      try {
        // The queue file's header and envelope, then our Received header and the message.
        await writer.write(header);
        await write(prelude);
        for await (const chunk of body) {
          if (isOversized()) continue; // read to the end, keep nothing more
          bytes += (chunk as Buffer).length;
          if (inspect && headBytes < HEAD_MAX_BYTES) {
            head.push(chunk as Buffer);
            headBytes += (chunk as Buffer).length;
          }
          await write(chunk as Buffer);
        }
        if (isOversized()) throw new SpoolSizeExceededError("message exceeds the size limit");
        const refusal = inspect?.(Buffer.concat(head).subarray(0, HEAD_MAX_BYTES));
        if (refusal) throw refusal;
        arriving?.receivedAll();
        await writer.flush();
        arriving?.finish();
        if (!deciding) await handle.sync();
      } catch (error) {
        arriving?.fail(error as Error);
        await writer.flush().catch(() => undefined); // no write of ours outlives the file
        await handle.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw error;
      }
      let target: "incoming" | "quarantine" | "hold" = "incoming";
      if (deciding) {
        try {
          const total = headerLength + bytes + prelude.length;
          // A large message's data goes to disk while the verdict finishes reading it.
          const early = total > HEAD_MAX_BYTES ? handle.datasync() : undefined;
          early?.catch(() => undefined);
          const decision = await deciding;
          await early;
          if ("refuse" in decision || "discard" in decision) {
            await handle.close();
            await unlink(tmp).catch(() => undefined);
            if ("refuse" in decision) throw decision.refuse;
            return { id, bytes: bytes + prelude.length, state: "discarded" };
          }
          target = decision.to;
          if (decision.meta) {
            const meta = Buffer.from(JSON.stringify(decision.meta), "utf8");
            const offset = Buffer.from(String(total).padStart(META_OFFSET_DIGITS, "0"), "latin1");
            await Promise.all([
              handle.write(meta, 0, meta.length, total),
              handle.write(offset, 0, offset.length, `${MAGIC} ${json.length} `.length),
            ]);
          }
          await handle.sync();
        } catch (error) {
          await handle.close().catch(() => undefined);
          await unlink(tmp).catch(() => undefined);
          throw error;
        }
      }
      // Synced: the rename need not wait for the close (each costs a turn under load).
      await Promise.all([handle.close(), rename(tmp, file(target, id))]);
      if (target === "incoming") await syncIncoming();
      else await fsyncDirectory(dir(target));
      return { id, bytes: bytes + prelude.length, state: target };
    },

    async list(state) {
      const names = await readdir(dir(state));
      return names.filter((n) => !n.endsWith(".rcpt") && !n.endsWith(".meta") && !n.endsWith(".tmp")).sort();
    },

    async read(state, id) {
      const path = file(state, id);
      const { envelope, offset, size, meta: written, whole } = await readQueueFile(path);
      let rcptTo = envelope.rcptTo;
      const companions = mayHaveCompanions(id);
      if (companions)
        try {
          const narrowed = JSON.parse(await readFileText(rcptFile(state, id))) as string[];
          if (Array.isArray(narrowed)) rcptTo = narrowed;
        } catch {
          // no narrowed recipient list: all of the envelope's recipients are pending
        }
      let meta = written;
      if (!meta && companions)
        try {
          meta = JSON.parse(await readFileText(metaFile(state, id))) as MessageMeta; // a MOAT1 file's
        } catch {
          // no verdict (queued before filtering, or a bounce)
        }
      return {
        envelope: { ...envelope, rcptTo },
        ...(meta ? { meta } : {}),
        bytes: size - offset,
        openMessage: () =>
          whole
            ? Readable.from(size > offset ? [whole.subarray(offset, size)] : [])
            : size > offset
              ? createReadStream(path, { start: offset, end: size - 1 })
              : Readable.from([]),
      };
    },

    async move(id, from, to) {
      await renameWithCompanions(id, from, to);
      await fsyncDirectory(dir(to));
    },

    claim: (id, from) => renameWithCompanions(id, from, "active"),

    async defer(id, from, nextAttemptAt, remaining) {
      if (remaining) {
        withCompanions?.add(id);
        await writeAtomically(dir(from), rcptFile(from, id), JSON.stringify(remaining));
      }
      await spool.move(id, from, "deferred");
      const when = new Date(nextAttemptAt);
      await utimes(file("deferred", id), when, when);
    },

    async dueAt(id) {
      return Math.round((await stat(file("deferred", id))).mtimeMs);
    },

    async modifiedAt(state, id) {
      return Math.round((await stat(file(state, id))).mtimeMs);
    },

    async remove(id, from, options) {
      await unlink(file(from, id));
      if (mayHaveCompanions(id)) {
        await unlink(rcptFile(from, id)).catch(() => undefined);
        await unlink(metaFile(from, id)).catch(() => undefined);
        withCompanions?.delete(id);
      }
      if (options?.sync !== false) await fsyncDirectory(dir(from));
    },
  };
  /** The message and its .rcpt and .meta companions (where they exist) into another state. */
  async function renameWithCompanions(id: string, from: QueueState, to: QueueState): Promise<void> {
    await rename(file(from, id), file(to, id));
    if (!mayHaveCompanions(id)) return;
    await rename(rcptFile(from, id), rcptFile(to, id)).catch(() => undefined);
    await rename(metaFile(from, id), metaFile(to, id)).catch(() => undefined);
  }
  return spool;
}
