/**
 * File-system steps the spool makes durable: directory fsyncs (one shared by concurrent
 * callers), atomic replacement of a small file, and reading one whole.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename } from "node:fs/promises";

export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function writeAtomically(dir: string, path: string, data: string | Buffer): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  const handle = await open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDirectory(dir);
}

/**
 * Group commit for a directory: every caller gets a directory fsync that started after its
 * rename, but concurrent callers share one. While an fsync runs, later callers wait for the
 * next one, which starts as soon as the current one ends — one fsync per batch under load,
 * no added latency when idle. The directory stays open from one fsync to the next and is
 * closed when no caller waits: under load a batch costs its fsync alone.
 */
export function coalescedDirectorySync(path: string): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  /** Kept open while fsyncs follow one another (under load: no open and close per batch). */
  let handle: FileHandle | undefined;
  const release = () => {
    const idle = handle;
    handle = undefined;
    void idle?.close().catch(() => undefined);
  };
  const sync = async () => {
    handle ??= await open(path, "r");
    await handle.sync();
  };
  const run = (): Promise<void> => {
    running = sync().then(
      () => {
        running = undefined;
        if (!next) release(); // idle: nobody is waiting for another fsync
      },
      (error: unknown) => {
        running = undefined;
        release();
        throw error;
      },
    );
    return running;
  };
  return () => {
    if (!running) return run();
    next ??= running.then(
      () => {
        next = undefined;
        return run();
      },
      () => {
        next = undefined;
        return run();
      },
    );
    return next;
  };
}

export async function readFileText(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}
