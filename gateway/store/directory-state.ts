/**
 * The synced directory on disk (`<dataDir>/directory/state.json`): the recipients from the
 * last successful sync, keyed by Entra object id, and the delta link of each collection.
 * A restart serves the saved directory at once and continues with a delta sync instead of
 * reading the whole tenant again.
 *
 * Written like the spool: temporary file, fsync, rename, directory fsync, so a crash leaves
 * either the old state or the new one. An unreadable or foreign file is reported and treated as
 * "no state" (the next run is a full sync); it is never half-loaded.
 *
 * The lock file keeps runs one at a time across processes (the gateway's schedule and
 * `moat sync`): created exclusively, holding the owner's pid; a lock whose owner is gone is
 * taken over.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { DirectoryRecord, RecipientKind } from "../directory/directory";

const STATE_FORMAT = 1;
const SAVE_CHUNK_RECORDS = 1_000;

export interface CollectionState {
  /** Entra object id -> the recipient it is. Objects that are not recipients are absent. */
  readonly records: ReadonlyMap<string, DirectoryRecord>;
  readonly deltaLink?: string;
}

export interface DirectoryState {
  readonly savedAt: string;
  readonly users: CollectionState;
  readonly groups: CollectionState;
}

type SavedRecord = [id: string, primary: string, aliases: readonly string[], displayName: string];

export interface DirectoryStateStore {
  readonly path: string;
  load(): DirectoryState | undefined;
  save(state: DirectoryState): void;
  /** Modification time of the saved state (ms), to notice a save by another process. */
  modifiedMs(): number | undefined;
  /** Takes the run lock; undefined when another live process holds it (its pid is returned in `heldBy`). */
  lock(): { release(): void } | { heldBy: number };
}

export class DirectoryStateError extends Error {}

export function createDirectoryStateStore(dir: string): DirectoryStateStore {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "state.json");
  const lockPath = join(dir, "sync.lock");

  function toCollection(raw: unknown, kind: RecipientKind, where: string): CollectionState {
    const value = raw as { records?: unknown; deltaLink?: unknown };
    if (!Array.isArray(value?.records)) throw new DirectoryStateError(`${where}.records is not a list`);
    const records = new Map<string, DirectoryRecord>();
    for (const entry of value.records as unknown[]) {
      const [id, primary, aliases, displayName] = entry as SavedRecord;
      if (typeof id !== "string" || typeof primary !== "string" || !Array.isArray(aliases))
        throw new DirectoryStateError(`${where}: malformed record ${JSON.stringify(entry).slice(0, 80)}`);
      records.set(id, { primary, aliases, displayName: String(displayName ?? ""), kind, source: "graph" });
    }
    return {
      records,
      ...(typeof value.deltaLink === "string" ? { deltaLink: value.deltaLink } : {}),
    };
  }

  return {
    path,
    load() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw error;
      }
      let raw: { format?: unknown; savedAt?: unknown; users?: unknown; groups?: unknown };
      try {
        raw = JSON.parse(text) as typeof raw;
      } catch (error) {
        throw new DirectoryStateError(`${path}: not JSON (${(error as Error).message})`);
      }
      if (raw.format !== STATE_FORMAT) throw new DirectoryStateError(`${path}: unknown format ${String(raw.format)}`);
      return {
        savedAt: String(raw.savedAt),
        users: toCollection(raw.users, "user", `${path}: users`),
        groups: toCollection(raw.groups, "group", `${path}: groups`),
      };
    },
    save(state) {
      const tmp = `${path}.${process.pid}.tmp`;
      const fd = openSync(tmp, "w", 0o600);
      try {
        // Written in chunks: one string of a 100,000-user tenant would cost tens of MB at the
        // moment memory peaks anyway (a run holds the old and the new directory).
        writeSync(fd, `{"format":${STATE_FORMAT},"savedAt":${JSON.stringify(state.savedAt)}`);
        for (const kind of ["users", "groups"] as const) {
          const collection = state[kind];
          writeSync(fd, `,${JSON.stringify(kind)}:{`);
          if (collection.deltaLink) writeSync(fd, `"deltaLink":${JSON.stringify(collection.deltaLink)},`);
          writeSync(fd, `"records":[`);
          let chunk: string[] = [];
          let first = true;
          for (const [id, r] of collection.records) {
            chunk.push(JSON.stringify([id, r.primary, r.aliases, r.displayName] satisfies SavedRecord));
            if (chunk.length === SAVE_CHUNK_RECORDS) {
              writeSync(fd, (first ? "" : ",") + chunk.join(","));
              first = false;
              chunk = [];
            }
          }
          if (chunk.length > 0) writeSync(fd, (first ? "" : ",") + chunk.join(","));
          writeSync(fd, "]}");
        }
        writeSync(fd, "}");
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
      const dirFd = openSync(dir, "r");
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    },
    modifiedMs() {
      try {
        return statSync(path).mtimeMs;
      } catch {
        return undefined;
      }
    },
    lock() {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const fd = openSync(lockPath, "wx", 0o600);
          writeSync(fd, String(process.pid));
          closeSync(fd);
          return { release: () => unlinkSync(lockPath) };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
          const owner = Number(readFileSync(lockPath, "utf8").trim());
          if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) return { heldBy: owner };
          unlinkSync(lockPath); // its owner is gone (crashed mid-run): take it over
        }
      }
      throw new DirectoryStateError(`${lockPath}: could not take the sync lock`);
    },
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
