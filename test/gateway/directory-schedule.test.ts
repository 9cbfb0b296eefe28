/** When directory sync runs inside the gateway: at start, then hourly plus jitter, never overlapping. */
import { describe, expect, test } from "vitest";
import { JITTER_FRACTION, startSyncSchedule } from "../../gateway/directory/schedule";
import type { DirectorySync, SyncOutcome } from "../../gateway/directory/sync";

function fakeTimers() {
  const pending: { fn: () => void; ms: number; id: number; unref: () => void }[] = [];
  let nextId = 1;
  return {
    pending,
    timers: {
      setTimeout: (fn: () => void, ms: number) => {
        const timer = { fn, ms, id: nextId++, unref: () => undefined };
        pending.push(timer);
        return timer;
      },
      clearTimeout: (handle: never) => {
        const index = pending.indexOf(handle);
        if (index >= 0) pending.splice(index, 1);
      },
    },
    /** Fires the pending timer with this delay (the run timer, not the reload poll). */
    fire(ms: number) {
      const index = pending.findIndex((t) => t.ms === ms);
      if (index < 0) throw new Error(`no timer of ${ms} ms; pending: ${pending.map((t) => t.ms).join(", ")}`);
      const [timer] = pending.splice(index, 1);
      timer?.fn();
    },
  };
}

function countingSync() {
  let resolveRun: (() => void) | undefined;
  const sync = {
    runs: 0,
    reloads: 0,
    finish: () => resolveRun?.(),
    run() {
      sync.runs++;
      return new Promise<SyncOutcome>((resolve) => {
        resolveRun = () => resolve({ ok: true } as SyncOutcome);
      });
    },
    reloadIfChanged() {
      sync.reloads++;
      return false;
    },
  };
  return sync;
}

describe("sync schedule", () => {
  test("runs at start, then every interval plus up to 10% jitter, the next only after the last finished", async () => {
    const clock = fakeTimers();
    const sync = countingSync();
    const schedule = startSyncSchedule({
      sync: sync as unknown as DirectorySync,
      intervalMinutes: 60,
      random: () => 0.5,
      timers: clock.timers,
    });
    clock.fire(0);
    expect(sync.runs).toBe(1);
    // While the run is under way, nothing else is scheduled.
    expect(clock.pending.map((t) => t.ms)).toEqual([5_000]);
    sync.finish();
    await new Promise((r) => setImmediate(r));
    const hourMs = 3_600_000;
    expect(clock.pending.map((t) => t.ms)).toContain(hourMs + 0.5 * JITTER_FRACTION * hourMs);
    clock.fire(hourMs + 0.5 * JITTER_FRACTION * hourMs);
    expect(sync.runs).toBe(2);
    clock.fire(5_000);
    expect(sync.reloads).toBe(1); // picks up a `moat sync` saved by another process
    schedule.stop();
    expect(clock.pending).toHaveLength(0);
  });
});
