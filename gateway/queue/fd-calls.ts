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

const settle =
  <T>(resolve: (value: T) => void, reject: (error: Error) => void) =>
  (error: Error | null, value: T) =>
    error ? reject(error) : resolve(value);

export const rename = (from: string, to: string): Promise<void> =>
  new Promise((resolve, reject) => fs.rename(from, to, (error) => (error ? reject(error) : resolve())));

export const unlink = (path: string): Promise<void> =>
  new Promise((resolve, reject) => fs.unlink(path, (error) => (error ? reject(error) : resolve())));

export const openDescriptor = (path: string, flags: number, mode?: number): Promise<number> =>
  new Promise((resolve, reject) => fs.open(path, flags, mode, settle(resolve, reject)));

export const fsyncDescriptor = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));

export const closeDescriptor = (fd: number): Promise<void> =>
  new Promise((resolve, reject) => fs.close(fd, (error) => (error ? reject(error) : resolve())));

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
            position === undefined
              ? fs.writev(fd, buffers as Buffer[], settle(resolve, reject))
              : fs.writev(fd, buffers as Buffer[], position, settle(resolve, reject)),
          ),
    write: (buffer, position) =>
      closing
        ? closed()
        : new Promise((resolve, reject) => fs.write(fd, buffer, 0, buffer.length, position, settle(resolve, reject))),
    close: () => (closing ??= closeDescriptor(fd)),
  };
}
