/**
 * Writes a message's chunks to its spool file in order, with one write in flight: chunks that
 * arrive meanwhile wait and go in the next write together (writev). The receiver so keeps
 * reading the socket while the disk works, instead of one thread-pool round trip per chunk;
 * past QUEUED_MAX_BYTES waiting, `write` waits too (the sender is slowed, memory stays bounded).
 */
import type { SpoolFile } from "./fd-calls";

const QUEUED_MAX_BYTES = 1024 * 1024;

export interface BatchedWriter {
  /** Queues a chunk; resolves at once unless too much is waiting. Throws a failed write's error. */
  write(chunk: Buffer): Promise<void>;
  /** Resolves once everything queued is written; throws a failed write's error. */
  flush(): Promise<void>;
}

/** `onWritten` is told about each chunk, in order, once it is in the file. */
export function batchedWriter(file: Pick<SpoolFile, "writev">, onWritten: (chunk: Buffer) => void): BatchedWriter {
  let queue: Buffer[] = [];
  let queuedBytes = 0;
  let running: Promise<void> | undefined;
  let failure: Error | undefined;
  const drain = async () => {
    try {
      while (queue.length > 0) {
        const batch = queue;
        const bytes = queuedBytes;
        queue = [];
        queuedBytes = 0;
        const bytesWritten = await file.writev(batch);
        if (bytesWritten !== bytes) throw new Error(`short write: ${bytesWritten} of ${bytes} bytes`);
        for (const chunk of batch) onWritten(chunk);
      }
    } catch (error) {
      failure = error as Error;
      queue = [];
    } finally {
      running = undefined;
    }
  };
  return {
    async write(chunk) {
      if (failure) throw failure;
      queue.push(chunk);
      queuedBytes += chunk.length;
      // drain() runs up to its first await at once, so `running` is set before anything else can look.
      running ??= drain();
      if (queuedBytes >= QUEUED_MAX_BYTES) await running;
      if (failure) throw failure;
    },
    async flush() {
      while (running) await running;
      if (failure) throw failure;
    },
  };
}
