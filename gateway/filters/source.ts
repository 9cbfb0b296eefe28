/**
 * A message's bytes as the detectors read them. The spool hands the verdict the message while
 * it is still arriving (queue/arriving.ts), so parsing and authentication run during the
 * transfer; tests, `scan` and `learn` hand it a message already in memory (bufferSource).
 */
import { Readable } from "node:stream";

export interface MessageSource {
  /**
   * The whole message from its first byte. While the message is still arriving the stream
   * waits for more and ends with the message; it fails if the message never arrives whole.
   * Every call is a new reader from the start.
   */
  open(): Readable;
  /** Resolves with the message's size once all of it is in; rejects if it never will be. */
  readonly complete: Promise<number>;
  /** Present while the message arrives into a file: how another thread can read it too. */
  readonly feed?: SourceFeed;
}

/**
 * An arriving message as another thread follows it (filters/thread-scanner.ts): the file it is
 * written to, and each chunk as it lands there. Chunks within the first `memoryLimit` bytes
 * come with their bytes; the thread reads the rest from the file, as this thread's readers do.
 */
export interface SourceFeed {
  readonly path: string;
  /** Where the message starts in the file. */
  readonly offset: number;
  readonly memoryLimit: number;
  /** Tells `listener` everything that happened so far, then each change as it happens. */
  follow(listener: FeedListener): void;
}

/** The same calls as the arriving message's own (queue/arriving.ts), so a copy can mirror it. */
export interface FeedListener {
  /** `chunk` is in the file, within the memory limit. */
  appended(chunk: Buffer): void;
  /** `length` more bytes are in the file, past the memory limit. */
  appendedInFile(length: number): void;
  finish(): void;
  fail(error: Error): void;
}

const STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * A message's bytes as a stream of 64 KB views (no copies). Parsers fed one 25 MB write build
 * all their intermediate buffers at once; fed in chunks with backpressure, each chunk's garbage
 * can go before the next (the large-message bench: RSS growth of a 25 MB message).
 */
export function streamOf(raw: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < raw.length; offset += STREAM_CHUNK_BYTES)
        yield raw.subarray(offset, offset + STREAM_CHUNK_BYTES);
    })(),
    { objectMode: false },
  );
}

/** A message that is all in memory already. */
export function bufferSource(raw: Buffer): MessageSource {
  return { open: () => streamOf(raw), complete: Promise.resolve(raw.length) };
}
