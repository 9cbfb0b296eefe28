/**
 * Group commit for the tracker's writes. A write waits for the end of the event-loop turn it
 * was made in, and every write of that turn goes into one transaction: one WAL commit (and one
 * flush of the subject index's pending terms) for a batch instead of one per write. Profiled
 * under smtp-source's load, the tracker's CPU fell from 1.8 s to 1.4 s per 4,000 messages, at
 * about 2.4 writes a batch; when idle a batch is one write, made a moment later.
 *
 * A write that fails (a constraint) fails alone and the rest of the batch is committed: the
 * batch is rolled back and run again with each write in a savepoint of its own (savepoints for
 * every batch cost ~40 µs a write). A failed commit fails them all. Readers call `flush()`
 * first, so a read always sees every write made before it.
 */
import type { Database } from "better-sqlite3";

export interface WriteBatch {
  /** Runs `write` in the next batch; settles when its batch is committed. */
  write(write: () => void): Promise<void>;
  /** Commits whatever is waiting, now. */
  flush(): void;
  /** Writes waiting, and batches and writes committed so far (for tests). */
  readonly stats: { readonly waiting: number; readonly batches: number; readonly writes: number };
}

interface Waiting {
  readonly write: () => void;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export function createWriteBatch(sqlite: Database): WriteBatch {
  let waiting: Waiting[] = [];
  let scheduled: NodeJS.Immediate | undefined;
  let batches = 0;
  let writes = 0;

  /** The usual case: every write succeeds, one transaction, no savepoints. */
  const commitAll = sqlite.transaction((batch: readonly Waiting[]) => {
    for (const item of batch) item.write();
  });
  const savepoint = sqlite.prepare("SAVEPOINT moat_write");
  const release = sqlite.prepare("RELEASE moat_write");
  const rollbackTo = sqlite.prepare("ROLLBACK TO moat_write");
  /** After a write failed and the batch was rolled back: again, each write in a savepoint. */
  const commitEach = sqlite.transaction((batch: readonly Waiting[]) => {
    const failures = new Map<Waiting, Error>();
    for (const item of batch) {
      savepoint.run();
      try {
        item.write();
      } catch (error) {
        rollbackTo.run();
        failures.set(item, error as Error);
      }
      release.run();
    }
    return failures;
  });
  const commit = (batch: readonly Waiting[]): Map<Waiting, Error> => {
    try {
      commitAll(batch);
      return new Map();
    } catch {
      return commitEach(batch); // the writes are statements with their values: running them again is safe
    }
  };

  const flush = () => {
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    const batch = waiting;
    waiting = [];
    if (batch.length === 0) return;
    let failures: Map<Waiting, Error>;
    try {
      failures = commit(batch);
    } catch (error) {
      for (const item of batch) item.reject(error as Error);
      return;
    }
    batches++;
    writes += batch.length;
    for (const item of batch) {
      const failure = failures.get(item);
      if (failure) item.reject(failure);
      else item.resolve();
    }
  };

  return {
    write: (write) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ write, resolve, reject });
        scheduled ??= setImmediate(flush);
      }),
    flush,
    get stats() {
      return { waiting: waiting.length, batches, writes };
    },
  };
}
