/**
 * Directory sync from Entra ID: reads users and mail-enabled groups through Graph delta
 * queries and keeps the directory static verification consults.
 *
 * - A run reads every page of both collections first (from the saved delta links, or from
 *   scratch for a full sync), then builds a new directory and swaps it in: verification never
 *   sees a half-synced directory. A failed run changes nothing; the previous directory stays
 *   in force and the failure shows in status() (health, metrics) and the log.
 * - A delta link Graph no longer knows (410 Gone) restarts that collection as a full read.
 * - Runs are one at a time: a second request joins the run under way (a full request waits
 *   for it and then runs in full); across processes the state store's lock decides.
 * - The spreadsheet users (moat:users) merge in by the rule in directory.ts: the sync wins
 *   for an address it knows, the spreadsheet adds what the sync does not know.
 * - Until the first successful run (and without saved state) there is no synced directory:
 *   `current()` is undefined and verification answers 451 for addresses the spreadsheet does
 *   not vouch for, rather than refusing real mailboxes with 550.
 */
import type { Logger } from "../log";
import type { CollectionState, DirectoryState, DirectoryStateStore } from "../store/directory-state";
import { type Directory, type DirectoryRecord, createDirectory } from "./directory";
import { DeltaExpiredError, type GraphPageReader } from "./graph-client";
import { type GraphGroup, type GraphUser, recordFromGroup, recordFromUser } from "./graph-records";

/** Properties a recipient decision needs (graph-records.ts); Graph returns only these. */
export const USER_SELECT = [
  "id",
  "displayName",
  "mail",
  "userPrincipalName",
  "proxyAddresses",
  "accountEnabled",
  "assignedLicenses",
  "userType",
] as const;
export const GROUP_SELECT = ["id", "displayName", "mail", "mailEnabled", "proxyAddresses"] as const;
/** A run that pages longer than this is broken (a nextLink loop): it fails instead of running forever. */
const MAX_PAGES_PER_COLLECTION = 100_000;

export type SyncMode = "full" | "delta";

export interface SyncOutcome {
  readonly ok: boolean;
  /** What the run did per collection (a delta can turn full when its link expired). */
  readonly modes: { readonly users: SyncMode; readonly groups: SyncMode };
  readonly addresses: number;
  readonly users: number;
  readonly groups: number;
  /** Objects that arrived in this run (changed or removed, for a delta). */
  readonly changes: number;
  readonly durationMs: number;
  readonly error?: string;
  /** Set when another process held the lock and this run did nothing. */
  readonly skippedBecauseRunningIn?: number;
}

export interface SyncStatus {
  readonly lastSuccessAt?: string;
  readonly lastAttemptAt?: string;
  readonly lastError?: string;
  readonly lastErrorAt?: string;
  readonly running: boolean;
  readonly runs: { readonly ok: number; readonly failed: number };
}

export interface DirectorySync {
  /** The directory in force, or undefined before the first successful sync. */
  current(): Directory | undefined;
  run(options?: { readonly full?: boolean }): Promise<SyncOutcome>;
  status(): SyncStatus;
  /** Picks up state another process saved (`moat sync` beside a running gateway). */
  reloadIfChanged(): boolean;
}

export function createDirectorySync(options: {
  readonly read: GraphPageReader;
  readonly domains: readonly string[];
  /** Spreadsheet users, merged below the synced ones. */
  readonly staticRecords: readonly DirectoryRecord[];
  readonly store: DirectoryStateStore;
  readonly log: Logger;
  readonly now?: () => Date;
}): DirectorySync {
  const { read, store, log } = options;
  const now = options.now ?? (() => new Date());
  const domains = new Set(options.domains.map((d) => d.toLowerCase()));
  let state: DirectoryState | undefined;
  let directory: Directory | undefined;
  let loadedMtime: number | undefined;
  let inFlight: Promise<SyncOutcome> | undefined;
  let fullQueued: Promise<SyncOutcome> | undefined;
  const status = {
    lastSuccessAt: undefined as string | undefined,
    lastAttemptAt: undefined as string | undefined,
    lastError: undefined as string | undefined,
    lastErrorAt: undefined as string | undefined,
    runs: { ok: 0, failed: 0 },
  };

  function install(next: DirectoryState): void {
    state = next;
    directory = createDirectory([
      ...next.users.records.values(),
      ...next.groups.records.values(),
      ...options.staticRecords,
    ]);
  }

  function loadSaved(): void {
    try {
      const saved = store.load();
      loadedMtime = store.modifiedMs();
      if (saved) {
        install(saved);
        status.lastSuccessAt = saved.savedAt;
        log.info("directory loaded from the last sync", { savedAt: saved.savedAt, addresses: directory?.size ?? 0 });
      }
    } catch (error) {
      log.error("saved directory unreadable; the next sync reads the tenant in full", {
        error: (error as Error).message,
      });
    }
  }
  loadSaved();

  async function readCollection(
    kind: "users" | "groups",
    previous: CollectionState | undefined,
    full: boolean,
  ): Promise<{ collection: CollectionState; mode: SyncMode; changes: number }> {
    const fromScratch = full || !previous?.deltaLink;
    try {
      return await page(kind, fromScratch ? undefined : previous);
    } catch (error) {
      if (!(error instanceof DeltaExpiredError) || fromScratch) throw error;
      log.warn(`directory: the ${kind} delta link expired; reading ${kind} in full`, { code: error.code });
      return page(kind, undefined);
    }
  }

  async function page(
    kind: "users" | "groups",
    previous: CollectionState | undefined,
  ): Promise<{ collection: CollectionState; mode: SyncMode; changes: number }> {
    const records = new Map(previous?.records ?? []);
    const select = (kind === "users" ? USER_SELECT : GROUP_SELECT).join(",");
    let link: string = previous?.deltaLink ?? `/${kind}/delta?$select=${select}`;
    let changes = 0;
    for (let pages = 0; pages < MAX_PAGES_PER_COLLECTION; pages++) {
      const result = await read(link);
      for (const object of result.value) {
        const id = object.id;
        if (typeof id !== "string") continue;
        changes++;
        const record =
          kind === "users"
            ? recordFromUser(object as unknown as GraphUser, domains)
            : recordFromGroup(object as unknown as GraphGroup, domains);
        if (record) records.set(id, record);
        else records.delete(id);
      }
      const deltaLink = result["@odata.deltaLink"];
      if (deltaLink) return { collection: { records, deltaLink }, mode: previous ? "delta" : "full", changes };
      const next = result["@odata.nextLink"];
      if (!next) throw new Error(`Graph ${kind} page has neither @odata.nextLink nor @odata.deltaLink`);
      link = next;
    }
    throw new Error(`Graph ${kind}: more than ${MAX_PAGES_PER_COLLECTION} pages; giving up this run`);
  }

  async function execute(full: boolean): Promise<SyncOutcome> {
    const started = Date.now();
    status.lastAttemptAt = now().toISOString();
    const lock = store.lock();
    if ("heldBy" in lock) {
      log.info("directory sync already running in another process; skipped", { pid: lock.heldBy });
      return {
        ok: false,
        modes: { users: "delta", groups: "delta" },
        addresses: directory?.size ?? 0,
        users: state?.users.records.size ?? 0,
        groups: state?.groups.records.size ?? 0,
        changes: 0,
        durationMs: 0,
        error: `a sync is already running (pid ${lock.heldBy})`,
        skippedBecauseRunningIn: lock.heldBy,
      };
    }
    try {
      // Another process may have saved newer state since we loaded ours: continue from it.
      reloadIfChanged();
      const users = await readCollection("users", state?.users, full);
      const groups = await readCollection("groups", state?.groups, full);
      const next: DirectoryState = { savedAt: now().toISOString(), users: users.collection, groups: groups.collection };
      store.save(next);
      loadedMtime = store.modifiedMs();
      install(next);
      status.lastSuccessAt = next.savedAt;
      status.lastError = undefined;
      status.runs.ok++;
      const outcome: SyncOutcome = {
        ok: true,
        modes: { users: users.mode, groups: groups.mode },
        addresses: directory?.size ?? 0,
        users: next.users.records.size,
        groups: next.groups.records.size,
        changes: users.changes + groups.changes,
        durationMs: Date.now() - started,
      };
      log.info("directory sync done", {
        users: `${outcome.users} (${users.mode})`,
        groups: `${outcome.groups} (${groups.mode})`,
        addresses: outcome.addresses,
        changes: outcome.changes,
        durationMs: outcome.durationMs,
      });
      return outcome;
    } catch (error) {
      const message = (error as Error).message;
      status.lastError = message;
      status.lastErrorAt = now().toISOString();
      status.runs.failed++;
      log.error("directory sync failed; the previous directory stays in force", {
        error: message,
        lastSuccessAt: status.lastSuccessAt ?? "never",
      });
      return {
        ok: false,
        modes: { users: full ? "full" : "delta", groups: full ? "full" : "delta" },
        addresses: directory?.size ?? 0,
        users: state?.users.records.size ?? 0,
        groups: state?.groups.records.size ?? 0,
        changes: 0,
        durationMs: Date.now() - started,
        error: message,
      };
    } finally {
      lock.release();
    }
  }

  function reloadIfChanged(): boolean {
    const mtime = store.modifiedMs();
    if (mtime === undefined || mtime === loadedMtime) return false;
    loadSaved();
    return true;
  }

  return {
    current: () => directory,
    status: () => ({ ...status, runs: { ...status.runs }, running: inFlight !== undefined }),
    reloadIfChanged,
    run(runOptions = {}) {
      if (inFlight) {
        if (!runOptions.full) return inFlight;
        fullQueued ??= inFlight.then(() => {
          fullQueued = undefined;
          return this.run({ full: true });
        });
        return fullQueued;
      }
      const current = execute(runOptions.full === true).finally(() => {
        inFlight = undefined;
      });
      inFlight = current;
      return current;
    },
  };
}
