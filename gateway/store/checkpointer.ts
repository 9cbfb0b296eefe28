/**
 * The tracker's WAL checkpoints, in a thread of their own. SQLite checkpoints a WAL database
 * from inside the commit that fills it past 1,000 pages: copying the pages into the database
 * file and syncing both. Under load that was every ~350 ms, 5–8 ms each, on the gateway's one
 * event loop, which every session in flight then waited for (measured with 150 msgs/s of the
 * mix). Here the writer's automatic checkpoint is off and a thread with its own connection
 * runs a PASSIVE checkpoint (it never blocks the writer or readers) every half second.
 *
 * A PASSIVE checkpoint copies what was committed when it began. The writer starts the WAL
 * over from its beginning only if, when it next writes, every frame has been copied; with the
 * writer committing every few milliseconds that moment never came after a single pass, and
 * the WAL grew to 142 MB beside a 29 MB database in two minutes at 400 arrivals a second. So
 * a checkpoint is passed again (each pass copying only what was committed during the last)
 * until a pass finds nothing new: the WAL then restarts every half second, at about 10 MB at
 * 400 arrivals a second. After a burst, the writer cuts the file back to JOURNAL_SIZE_LIMIT
 * when it restarts it.
 *
 * Should the thread fail or end on its own, the writer's automatic checkpoint is turned back
 * on, so the WAL never grows without bound.
 */
import { Worker } from "node:worker_threads";
import type { Database } from "better-sqlite3";

const CHECKPOINT_INTERVAL_MS = 500;
const PASSES = 10;
const JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024;
/** SQLite's own default (SQLITE_DEFAULT_WAL_AUTOCHECKPOINT), for the fallback. */
const AUTOCHECKPOINT_PAGES = 1000;

/** Plain JavaScript, so the thread needs neither tsx nor dist/. Any failure ends it. */
const THREAD_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
// better-sqlite3's SqliteError reaches the parent as a bare { code }: send a plain Error.
const plain = (error) => new Error(String((error && error.message) || error) + (error && error.code ? " (" + error.code + ")" : ""));
let db;
try {
  db = new Database(workerData.path, { fileMustExist: true });
} catch (error) {
  throw plain(error);
}
const checkpoint = () => {
  try {
    // Again while the writer commits: the WAL restarts only once a pass has copied all of it.
    let last = -1;
    for (let pass = 0; pass < workerData.passes; pass++) {
      const { log, checkpointed } = db.pragma("wal_checkpoint(PASSIVE)")[0];
      if (log === checkpointed && log === last) return;
      last = log;
    }
  } catch (error) {
    throw plain(error);
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Whether the thread checkpoints (false: it failed, and the writer checkpoints again). */
  readonly threaded: () => boolean;
  /** Stops the thread and waits for it. */
  close(): Promise<void>;
}

/**
 * @param sqlite the writer's connection, to `path`, in WAL mode
 * @param onFailure told once if the thread fails (the writer checkpoints from then on)
 */
export function startCheckpointer(
  sqlite: Database,
  path: string,
  onFailure: (error: Error) => void = () => undefined,
): Checkpointer {
  sqlite.pragma("wal_autocheckpoint = 0");
  sqlite.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
  let threaded = true;
  let closing = false;
  const fallBack = (error: unknown) => {
    if (!threaded) return;
    threaded = false;
    sqlite.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    onFailure(error instanceof Error ? error : new Error(JSON.stringify(error)));
  };
  const thread = new Worker(THREAD_SOURCE, {
    eval: true,
    workerData: {
      module: require.resolve("better-sqlite3"),
      path,
      intervalMs: CHECKPOINT_INTERVAL_MS,
      passes: PASSES,
    },
    execArgv: [],
  });
  // A tracker left open does not keep the process alive; one being closed does, until the thread
  // has ended: else a process with nothing else to do exits while close() waits for the thread,
  // and nothing after the awaited close runs (a bench's clean-up did not).
  thread.unref();
  thread.on("error", fallBack);
  const exited = new Promise<void>((resolve) =>
    thread.once("exit", (code) => {
      if (!closing) fallBack(new Error(`the checkpoint thread ended (exit code ${code})`));
      resolve();
    }),
  );
  return {
    threaded: () => threaded,
    async close() {
      closing = true;
      thread.ref();
      thread.postMessage("stop");
      await exited;
    },
  };
}
