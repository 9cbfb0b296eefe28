/**
 * A message while the spool receives it, readable by the verdict at the same time. Every
 * reader gets the whole message from its first byte: the first bytes (up to the memory limit)
 * from the chunks as they came, as soon as they come, the rest from the file in tmp/, where
 * each chunk is written before readers are told about it. A message that fits in memory (most
 * mail) ends for its readers when the sender is done, without waiting for the disk: the verdict
 * runs beside the write and its fsync, not after them. A reader that catches up with the
 * sender waits for the next chunk; the stream ends when the message does, and fails when it
 * never arrives whole (too large, refused, connection lost).
 *
 * So the verdict parses and authenticates during the transfer instead of after it, and a large
 * message is never held in memory whole (bench/large-message.ts). Readers pull at their own
 * pace: a slow detector never holds up the sender, it reads later from the file.
 */
import { type FileHandle, open } from "node:fs/promises";
import { Readable } from "node:stream";
import type { FeedListener, MessageSource } from "../filters/source";
import { largeMessageBytes } from "./young-collection";

/**
 * A reader behind the file reads this much at a time: each read is a round trip through libuv's
 * thread pool and an event-loop turn, beside the spool's own writes. For a 25.7 MB message
 * (bench/large-message.ts) the accept measured 46-57 MB/s with 64 KB reads and 67-80 with 256 KB
 * (five pairs), the gateway's RSS growth the same; 1 MB was no faster.
 */
const READ_CHUNK_BYTES = 256 * 1024;

export interface ArrivingMessage extends FeedListener {
  readonly source: MessageSource;
  /**
   * `chunk` has come from the sender, and is about to be written. While the message still fits
   * in the memory limit, readers get it at once, from memory, without waiting for the disk; the
   * answer says whether they did (then it is not `appended` again once written).
   */
  received(chunk: Buffer): boolean;
  /** The sender is done: when readers have had all of it from memory, they get its end now. */
  receivedAll(): void;
  /** `chunk` is written to the file, after the ones before it. */
  appended(chunk: Buffer): void;
  /** `length` bytes are written to the file, and readers get them from there (another thread's copy). */
  appendedInFile(length: number): void;
  /** The whole message is in. */
  finish(): void;
  /** It never will be: readers fail with `error`. */
  fail(error: Error): void;
}

/**
 * @param path the file being written
 * @param offset where the message starts in that file (after the spool's own header)
 * @param memoryLimit how much of the message start readers get from memory
 */
export function arrivingMessage(path: string, offset: number, memoryLimit: number): ArrivingMessage {
  const held: Buffer[] = [];
  let heldBytes = 0;
  let holding = true;
  let written = 0;
  let finished = false;
  let failure: Error | undefined;
  const listeners: FeedListener[] = [];
  let waiters: (() => void)[] = [];
  const wake = () => {
    const current = waiters;
    waiters = [];
    for (const resolve of current) resolve();
  };
  let resolveComplete: (size: number) => void = () => undefined;
  let rejectComplete: (error: Error) => void = () => undefined;
  const complete = new Promise<number>((resolve, reject) => {
    resolveComplete = resolve;
    rejectComplete = reject;
  });
  complete.catch(() => undefined); // a refused message with nobody waiting is not an unhandled rejection

  const openReader = (): Readable => {
    let position = 0;
    let chunkIndex = 0;
    let chunkStart = 0;
    let handle: FileHandle | undefined;
    const next = async (stream: Readable): Promise<void> => {
      for (;;) {
        if (stream.destroyed) return;
        if (position < heldBytes) {
          while (chunkStart + held[chunkIndex]!.length <= position) chunkStart += held[chunkIndex++]!.length;
          const chunk = held[chunkIndex]!.subarray(position - chunkStart);
          position += chunk.length;
          stream.push(chunk);
          return;
        }
        if (position < written) {
          handle ??= await open(path, "r");
          const length = Math.min(READ_CHUNK_BYTES, written - position);
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, offset + position);
          if (bytesRead === 0) throw new Error(`${path} ended at ${position} of ${written} bytes written`);
          position += bytesRead;
          largeMessageBytes.handled(bytesRead); // with the parser's copy, garbage soon (young-collection.ts)
          if (!stream.destroyed) stream.push(buffer.subarray(0, bytesRead));
          return;
        }
        if (failure) throw failure;
        if (finished) {
          stream.push(null);
          return;
        }
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    return new Readable({
      highWaterMark: READ_CHUNK_BYTES,
      // Readable calls read() again only after a push, so one next() runs at a time.
      read() {
        next(this).catch((error: Error) => this.destroy(error));
      },
      destroy(error, callback) {
        const closing = handle?.close() ?? Promise.resolve();
        handle = undefined;
        closing.then(
          () => callback(error),
          () => callback(error),
        );
      },
    });
  };

  const follow = (listener: FeedListener) => {
    for (const chunk of held) listener.appended(chunk);
    if (written > heldBytes) listener.appendedInFile(written - heldBytes);
    if (finished) listener.finish();
    else if (failure) listener.fail(failure);
    else listeners.push(listener);
  };

  const message: ArrivingMessage = {
    source: { open: openReader, complete, feed: { path, offset, memoryLimit, follow } },
    received(chunk) {
      if (!holding || heldBytes + chunk.length > memoryLimit) {
        holding = false;
        return false;
      }
      message.appended(chunk);
      return true;
    },
    receivedAll() {
      if (holding) message.finish();
    },
    appended(chunk) {
      const hold = holding && heldBytes + chunk.length <= memoryLimit;
      if (hold) {
        held.push(chunk);
        heldBytes += chunk.length;
      } else holding = false;
      written += chunk.length;
      for (const listener of listeners) {
        if (hold) listener.appended(chunk);
        else listener.appendedInFile(chunk.length);
      }
      wake();
    },
    appendedInFile(length) {
      holding = false;
      written += length;
      wake();
    },
    finish() {
      if (finished || failure) return;
      finished = true;
      resolveComplete(written);
      for (const listener of listeners.splice(0)) listener.finish();
      wake();
    },
    fail(error) {
      if (finished) return;
      failure = error;
      rejectComplete(error);
      for (const listener of listeners.splice(0)) listener.fail(error);
      wake();
    },
  };
  return message;
}
