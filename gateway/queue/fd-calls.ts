/**
 * The spool's file calls on the path every message takes (accept, claim, removal) through fs's
 * callback functions on a plain descriptor, each wrapped in one promise. fs/promises does the
 * same work through a FileHandle and async functions with a promise made in C++ for each call:
 * for a message's open, write, close, rename, claim and unlink, about 25 µs more of the event
 * loop's CPU (bench/RESULTS.md, the AS session), and the event loop is what sets Moat's rate.
 * Every call still runs in libuv's thread pool.
 *
 * A plain descriptor has none of FileHandle's guards, so `SpoolFile` keeps the one that
 * matters: after close() no write is started and close() runs once (a descriptor's number is
 * reused by the next open, so a stray write or second close would hit another file).
 */
import * as fs from "node:fs";
import { promisify } from "node:util";

export const rename = promisify(fs.rename);
export const unlink = promisify(fs.unlink);
export const openDescriptor = promisify(fs.open);
export const fsyncDescriptor = promisify(fs.fsync);
export const closeDescriptor = promisify(fs.close);

/** A callback that settles a promise (fs.writev's and fs.write's promisified forms resolve to objects). */
const settle =
  <T>(resolve: (value: T) => void, reject: (error: Error) => void) =>
  (error: Error | null, value: T) =>
    error ? reject(error) : resolve(value);

/** A file open for writing: the writes batched-writer.ts and the spool make, and its close. */
export interface SpoolFile {
  /** Writes the buffers in order at `position` (at the file's offset without one); resolves to the bytes written. */
  writev(buffers: readonly Buffer[], position?: number): Promise<number>;
  /** Writes `buffer` at `position`; resolves to the bytes written. */
  write(buffer: Buffer, position: number): Promise<number>;
  /** Closes the descriptor, once (a later call gets the first one's promise); a write after it fails. */
  close(): Promise<void>;
}

export async function openSpoolFile(path: string, flags: number, mode: number): Promise<SpoolFile> {
  const fd = await openDescriptor(path, flags, mode);
  let closing: Promise<void> | undefined;
  const closed = () => Promise.reject(new Error(`${path}: written after it was closed`));
  return {
    writev: (buffers, position) =>
      closing
        ? closed()
        : new Promise((resolve, reject) =>
            fs.writev(fd, buffers as Buffer[], position ?? null, settle(resolve, reject)),
          ),
    write: (buffer, position) =>
      closing
        ? closed()
        : new Promise((resolve, reject) => fs.write(fd, buffer, 0, buffer.length, position, settle(resolve, reject))),
    close: () => (closing ??= closeDescriptor(fd)),
  };
}
