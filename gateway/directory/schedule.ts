/**
 * When directory sync runs inside the gateway: once at start-up, then every interval plus a
 * random jitter of up to JITTER_FRACTION of it (so many gateways syncing one tenant, or many
 * tenants on one Graph, do not all ask at the top of the hour). Runs never overlap (sync.ts
 * joins a request to the run under way). Every RELOAD_POLL_MS the saved state is checked for a
 * newer save by `moat sync` in another process.
 *
 * Timers are unref'd: the schedule never keeps a process alive; stop() clears them.
 */
import type { DirectorySync } from "./sync";

export const JITTER_FRACTION = 0.1;
const RELOAD_POLL_MS = 5_000;
const MS_PER_MINUTE = 60_000;

export interface SyncSchedule {
  /** When the next scheduled run starts (ms since the epoch). */
  nextRunAt(): number;
  stop(): void;
}

export function startSyncSchedule(options: {
  readonly sync: DirectorySync;
  readonly intervalMinutes: number;
  readonly random?: () => number;
  readonly timers?: {
    setTimeout: (fn: () => void, ms: number) => { unref?: () => void };
    clearTimeout: (handle: never) => void;
  };
}): SyncSchedule {
  const random = options.random ?? Math.random;
  const timers = options.timers ?? { setTimeout, clearTimeout: clearTimeout as (handle: never) => void };
  const intervalMs = options.intervalMinutes * MS_PER_MINUTE;
  let stopped = false;
  let next = Date.now();
  let runTimer: ReturnType<typeof timers.setTimeout> | undefined;
  let pollTimer: ReturnType<typeof timers.setTimeout> | undefined;

  const schedule = (delayMs: number) => {
    if (stopped) return;
    next = Date.now() + delayMs;
    runTimer = timers.setTimeout(() => {
      void options.sync.run().finally(() => schedule(intervalMs + random() * JITTER_FRACTION * intervalMs));
    }, delayMs);
    runTimer.unref?.();
  };
  const poll = () => {
    if (stopped) return;
    pollTimer = timers.setTimeout(() => {
      options.sync.reloadIfChanged();
      poll();
    }, RELOAD_POLL_MS);
    pollTimer.unref?.();
  };
  schedule(0);
  poll();
  return {
    nextRunAt: () => next,
    stop() {
      stopped = true;
      if (runTimer) timers.clearTimeout(runTimer as never);
      if (pollTimer) timers.clearTimeout(pollTimer as never);
    },
  };
}
