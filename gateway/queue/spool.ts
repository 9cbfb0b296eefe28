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
 * accept() writes envelope + message to tmp/ durably (the file is opened O_DSYNC: a write is
 * on disk when it returns, as if fdatasync'd), renames it into incoming/ and fsyncs the
 * directory; only then may the caller answer 250. Any failure before that leaves
 * no file in incoming/ and throws, and the caller answers 451. A message up to HOLD_MAX_BYTES
 * is held in memory as it arrives and written in one write at the end; a larger one is
 * written as it comes (batched-writer.ts: the socket is read while the disk writes).
 *
 * With `decide`, the message is judged before it is acknowledged (pre-queue filtering). The
 * verdict starts when the transfer does and reads the message as it arrives (arriving.ts); the
 * spool waits for both the decision and the message being durable in tmp/. The decision names
 * the state it goes to, or discards it (delete), or refuses it (reject, tempfail: nothing kept,
 * the error is thrown). A message that never arrives whole is refused whatever the verdict
 * would have been. A held message that is refused is never written at all.
 *
 * Headers the verdict adds on delivery (Authentication-Results) and the verdict summary go at
 * the end of the same file, after the message, with their offset in the file's first line (a
 * held message is written once, with its verdict, after the decision; a large one's verdict
 * after its data). The message bytes are never changed (a release delivers the original). A held
 * message comes back from accept() as delivery would read it, so delivery need not read it.
 *
 * The file format is queue-file.ts's; files of the earlier format (MOAT1, with the verdict in a
 * `<id>.meta` file beside them) are still read and moved.
 */
import { randomBytes } from "node:crypto";
import { constants, mkdir, readdir, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { MessageSource } from "../filters/source";
import { arrivingMessage } from "./arriving";
import { coalescedDirectorySync, fsyncDirectory, readFileText, writeAtomically } from "./files";
import { batchedWriter } from "./batched-writer";
import { openSpoolFile, rename, unlink } from "./fd-calls";
import { largeMessageBytes } from "./young-collection";
import {
  type Envelope,
  type MessageMeta,
  NEWLINE,
  type QueuedMessage,
  firstLineOf,
  heldMessage,
  metaOffsetField,
  queuedMessage,
  readQueueFile,
} from "./queue-file";

export type { Envelope, MessageMeta, QueuedMessage } from "./queue-file";

export const QUEUE_STATES = ["tmp", "incoming", "active", "deferred", "hold", "quarantine", "corrupt"] as const;
export type QueueState = (typeof QUEUE_STATES)[number];

export type SpoolDecision =
  | { readonly to: "incoming" | "quarantine" | "hold"; readonly meta?: MessageMeta }
  | { readonly discard: true }
  | { readonly refuse: Error };

/** How much of the message start `inspect` gets (headers live there). */
export const HEAD_MAX_BYTES = 256 * 1024;
/**
 * A message up to this size (most mail) is held in memory while it arrives and written to its
 * file in one write once it is in and judged: one thread-pool round trip instead of one per
 * batch of chunks plus two for the verdict, and none for a message the verdict refuses. A
 * larger one is written as it comes (batched-writer.ts), so memory stays bounded.
 */
export const HOLD_MAX_BYTES = 256 * 1024;
export class SpoolSizeExceededError extends Error {}

/** How a message's file in tmp/ is opened: created, never an existing one, every write synchronous to disk. */
const DURABLE_WRITES = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

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
  ): Promise<{
    id: string;
    bytes: number;
    state: "incoming" | "quarantine" | "hold" | "discarded";
    /** A message small enough to be held: as delivery would read it back (so it need not). */
    message?: QueuedMessage;
  }>;
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
      // O_DSYNC: each write is durable when it returns (as if fdatasync'd), so a held message
      // needs one write and no fsync: one thread-pool round trip and one event-loop turn less.
      const handle = await openSpoolFile(tmp, DURABLE_WRITES, 0o600);
      const header = Buffer.concat([firstLineOf(json.length, 0), json, NEWLINE]);
      const headerLength = header.length;
      let bytes = 0;
      const head: Buffer[] = [];
      let headBytes = 0;
      // The message starts after the spool's header; the verdict reads it from there as it comes.
      const arriving = decide ? arrivingMessage(tmp, headerLength, HOLD_MAX_BYTES) : undefined;
      const deciding = arriving && decide ? decide(arriving.source, id) : undefined;
      deciding?.catch(() => undefined); // awaited below, or abandoned with a refused message
      /** The message (our Received header first) while it fits in memory; undefined once it is streamed to the file. */
      let held: Buffer[] | undefined = [];
      let heldBytes = 0;
      let early = 0; // the first chunks, which the verdict had from memory before they were written
      const writer = batchedWriter(handle, (chunk) => {
        if (chunk === header) return;
        if (early > 0) early--;
        else arriving?.appended(chunk);
        largeMessageBytes.handled(chunk.length); // written: garbage soon (young-collection.ts)
      });
      const write = async (chunk: Buffer) => {
        const inMemory = arriving ? arriving.received(chunk) : heldBytes + chunk.length <= HOLD_MAX_BYTES;
        if (arriving && inMemory) early++;
        if (held) {
          if (inMemory) {
            held.push(chunk);
            heldBytes += chunk.length;
            return;
          }
          // Too large to hold: what came so far goes to the file, and from now on each chunk as it comes.
          const spilled = held;
          held = undefined;
          await writer.write(header);
          for (const part of spilled) await writer.write(part);
        }
        await writer.write(chunk);
      };
      const discard = async () => {
        await writer.flush().catch(() => undefined); // no write of ours outlives the file
        await handle.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
      };
      /** A held message joined into one buffer once it is all in. */
      let whole: Buffer | undefined;
      try {
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
        whole = held ? Buffer.concat(held, heldBytes) : undefined;
        // A held message's head is in `whole` already (after our Received header): no copy of it.
        const start = prelude.length;
        const refusal = inspect?.(
          whole ? whole.subarray(start, start + HEAD_MAX_BYTES) : Buffer.concat(head).subarray(0, HEAD_MAX_BYTES),
        );
        if (refusal) throw refusal;
        arriving?.receivedAll();
        if (!held) {
          await writer.flush();
          arriving?.finish();
        }
      } catch (error) {
        arriving?.fail(error as Error);
        await discard();
        throw error;
      }
      let target: "incoming" | "quarantine" | "hold" = "incoming";
      let meta: MessageMeta | undefined;
      try {
        if (deciding) {
          const decision = await deciding;
          if ("refuse" in decision || "discard" in decision) {
            await discard();
            if ("refuse" in decision) throw decision.refuse;
            return { id, bytes: bytes + prelude.length, state: "discarded" };
          }
          target = decision.to;
          meta = decision.meta;
        }
        const metaJson = meta ? Buffer.from(JSON.stringify(meta), "utf8") : undefined;
        const metaOffset = headerLength + bytes + prelude.length;
        if (whole) {
          // Held: header, message and verdict in one write.
          const parts = [firstLineOf(json.length, metaJson ? metaOffset : 0), json, NEWLINE, whole];
          if (metaJson) parts.push(metaJson);
          const expected = parts.reduce((sum, part) => sum + part.length, 0);
          const bytesWritten = await handle.writev(parts, 0);
          if (bytesWritten !== expected) throw new Error(`short write: ${bytesWritten} of ${expected} bytes`);
        } else if (metaJson) {
          const field = metaOffsetField(json.length, metaOffset);
          await Promise.all([handle.write(metaJson, metaOffset), handle.write(field.bytes, field.position)]);
        }
      } catch (error) {
        await discard();
        throw error;
      }
      // Durable: the rename need not wait for the close (each costs a turn under load).
      await Promise.all([handle.close(), rename(tmp, file(target, id))]);
      if (target === "incoming") await syncIncoming();
      else await fsyncDirectory(dir(target));
      const accepted = { id, bytes: bytes + prelude.length, state: target };
      return whole ? { ...accepted, message: heldMessage(envelope, meta, whole) } : accepted;
    },

    async list(state) {
      const names = await readdir(dir(state));
      return names.filter((n) => !n.endsWith(".rcpt") && !n.endsWith(".meta") && !n.endsWith(".tmp")).sort();
    },

    async read(state, id) {
      const path = file(state, id);
      const found = await readQueueFile(path);
      let rcptTo = found.envelope.rcptTo;
      const companions = mayHaveCompanions(id);
      if (companions)
        try {
          const narrowed = JSON.parse(await readFileText(rcptFile(state, id))) as string[];
          if (Array.isArray(narrowed)) rcptTo = narrowed;
        } catch {
          // no narrowed recipient list: all of the envelope's recipients are pending
        }
      let meta = found.meta;
      if (!meta && companions)
        try {
          meta = JSON.parse(await readFileText(metaFile(state, id))) as MessageMeta; // a MOAT1 file's
        } catch {
          // no verdict (queued before filtering, or a bounce)
        }
      return queuedMessage(path, found, { ...found.envelope, rcptTo }, meta);
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
