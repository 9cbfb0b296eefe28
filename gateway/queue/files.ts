/**
 * File-system steps the spool makes durable: directory fsyncs (one shared by concurrent
 * callers), atomic replacement of a small file, and reading one whole.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, rename } from "node:fs/promises";
import { closeDescriptor, fsyncDescriptor, openDescriptor } from "./fd-calls";

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
 * How long the directory stays open after its last fsync. At a steady trickle of mail (one
 * message every few ms, no two fsyncs overlapping) an open and a close around every fsync were
 * two thread-pool round trips a message, each about as costly as the fsync itself (bench/peers.ts).
 */
export const DIRECTORY_IDLE_CLOSE_MS = 2_000;

/**
 * Group commit for a directory: every caller gets a directory fsync that started after its
 * rename, but concurrent callers share one. While an fsync runs, later callers wait for the
 * next one, which starts as soon as the current one ends — one fsync per batch under load,
 * no added latency when idle. The directory is opened once and kept open while mail keeps
 * coming; `idleCloseMs` after the last fsync it is closed (the next caller opens it again), so
 * an idle gateway holds no descriptor for it. A failed fsync closes it at once.
 */
export function coalescedDirectorySync(path: string, idleCloseMs = DIRECTORY_IDLE_CLOSE_MS): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  /** The directory's descriptor (fd-calls.ts: one pool round trip a call, the loop's least work). */
  let fd: number | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const release = () => {
    const idle = fd;
    fd = undefined;
    if (idle !== undefined) void closeDescriptor(idle).catch(() => undefined);
  };
  /** One timer, pushed back by every fsync (no new timer per fsync under load). */
  const closeWhenIdle = () => {
    idleTimer ??= setTimeout(() => {
      if (!running) release();
    }, idleCloseMs).unref();
    idleTimer.refresh();
  };
  const sync = async () => {
    fd ??= await openDescriptor(path, constants.O_RDONLY);
    await fsyncDescriptor(fd);
  };
  const run = (): Promise<void> => {
    running = sync().then(
      () => {
        running = undefined;
        closeWhenIdle();
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
