/**
 * A large message's buffers, collected while it streams instead of after.
 *
 * Past the 256 KB the spool holds in memory, a message passes through the gateway in buffers
 * that are garbage a moment later: the socket's reads once they are written to the spool, the
 * verdict's reads of the spool file with the parser's copies of them, and delivery's reads of
 * it with the SMTP client's dot-stuffed copies. V8 frees a buffer's
 * memory only when it collects the buffer's young generation, and while little JavaScript is
 * allocated it does that for buffers alone once 32 MB of them have piled up in that thread
 * (V8's Heap::AllocateExternalBackingStore: twice the default maximum semi-space). With the
 * verdict in its own thread (`filters.scanThread`) that is up to 32 MB in each thread: a 25.7 MB
 * message grew the gateway by 2.5x its size (bench/large-message.ts), and each new buffer was
 * fresh memory for the kernel to fault in.
 *
 * So each thread collects its young generation after every COLLECT_EVERY_BYTES of message it
 * has written or read this way: a young-generation collection of a few hundred microseconds
 * that frees what those bytes left behind. A message held in memory (most mail) never gets
 * here. V8 offers the collection to scripts only with --expose-gc: the flag is set for as long
 * as it takes to fetch the function into a fresh context, then unset (as Jest does for
 * --logHeapUsage), once per thread when it starts. Where that fails the collection is skipped
 * and V8 collects when it would.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** Message bytes a thread writes or reads between two collections of its young generation. */
export const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;

type MinorCollection = () => void;
type V8Collection = (options?: { type: "minor" | "major" }) => void;

/** V8's gc() for this thread (a full collection unless told `minor`), or undefined where it cannot be had. */
export function v8Collection(): V8Collection | undefined {
  let gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== "function") {
    try {
      setFlagsFromString("--expose-gc");
      gc = runInNewContext("gc");
    } catch {
      gc = undefined;
    } finally {
      setFlagsFromString("--no-expose-gc");
    }
  }
  return typeof gc === "function" ? (gc as V8Collection) : undefined;
}

/** V8's young-generation collection for this thread, or undefined where it cannot be had. */
export function v8MinorCollection(): MinorCollection | undefined {
  const gc = v8Collection();
  return gc && (() => gc({ type: "minor" }));
}

/** Counts message bytes; every `every` bytes, one `collect()` (none where it is undefined). */
export function youngCollector(
  every: number,
  collect: MinorCollection | undefined,
): { handled(bytes: number): void; readonly collections: number } {
  let since = 0;
  let collections = 0;
  return {
    handled(bytes) {
      since += bytes;
      if (since < every) return;
      since = 0;
      if (!collect) return;
      collect();
      collections++;
    },
    get collections() {
      return collections;
    },
  };
}

/**
 * This thread's: each worker thread loads its own copy of this module. Fetched when the module
 * loads, at start-up, so that no two threads change V8's flags while mail flows.
 */
export const largeMessageBytes = youngCollector(COLLECT_EVERY_BYTES, v8MinorCollection());
