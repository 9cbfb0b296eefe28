/** The tracker's WAL checkpoints in their own thread (checkpointer.ts), on real SQLite. */
import { closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { runTsx } from "../../components/offline/child";
import { startCheckpointer } from "../../gateway/store/checkpointer";
import { type ArrivalRecord, openSqliteTracker } from "../../gateway/store/tracker";
import { ROOT } from "../helpers/gateway-process";

/**
 * Messages in the database file itself: a copy of it without its WAL. The checkpoint thread
 * may be writing pages into the file while it is copied; such a torn copy reads as corrupt
 * and counts as "not yet" (-2), so the caller copies again.
 */
function messagesInDatabaseFile(path: string): number {
  const copy = `${path}.copy`;
  copyFileSync(path, copy);
  const db = new Database(copy);
  try {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'messages'").get() as { n: number };
    if (tables.n === 0) return -1; // not even the schema is in the file yet
    return (db.prepare("SELECT count(*) AS n FROM messages").get() as { n: number }).n;
  } catch (error) {
    if (error instanceof Database.SqliteError && /^SQLITE_(CORRUPT|NOTADB)/.test(error.code)) return -2;
    throw error;
  } finally {
    db.close();
  }
}

/** The WAL header's checkpoint sequence: SQLite adds one each time the WAL starts over. */
function walRestarts(path: string): number {
  const header = Buffer.alloc(16);
  const fd = openSync(`${path}-wal`, "r");
  try {
    readSync(fd, header, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt32BE(12);
}

/** Arrival number `i`: its id is `Q<i>`, its subject `report <i>`. */
function arrival(i: number): ArrivalRecord {
  return {
    id: `Q${i}`,
    receivedAt: 1_000 + i,
    clientIp: "192.0.2.1",
    helo: "mx.outside.example",
    tls: true,
    mailFrom: `sender${i % 500}@outside.example`,
    recipients: [`user${i % 50}@northwind.example`],
    subject: `report ${i}`,
    size: 1234,
    direction: "inbound",
  };
}

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50)))
    if (condition()) return true;
  return condition();
}

describe("the tracker's checkpoint thread", () => {
  it("moves committed records from the WAL into the database file while the writer only appends", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-checkpoint-")), "tracker.sqlite");
    const tracker = await openSqliteTracker(path);
    for (let i = 0; i < 40; i++) await tracker.recordArrival(arrival(i));
    // 40 arrivals are far below the 1,000 WAL pages at which the writer would checkpoint itself.
    expect(await until(() => messagesInDatabaseFile(path) === 40, 5_000)).toBe(true);
    expect((await tracker.story("Q39"))?.subject).toBe("report 39");
    await tracker.close();
  });

  it("starts the WAL over while the writer keeps committing, so it does not grow with the mail", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-checkpoint-")), "tracker.sqlite");
    const tracker = await openSqliteTracker(path);
    let written = 0;
    await tracker.recordArrival(arrival(written++));
    const restartsBefore = walRestarts(path);
    // A commit every few milliseconds for 2.5 s: five checkpoint intervals with no quiet moment.
    for (const end = Date.now() + 2_500; Date.now() < end; await new Promise((r) => setTimeout(r, 2)))
      await Promise.all([0, 1, 2, 3, 4].map(() => tracker.recordArrival(arrival(written++))));
    const restarts = walRestarts(path) - restartsBefore;
    const walBytes = statSync(`${path}-wal`).size;
    await tracker.close();
    // One pass a half second: no restart (the WAL held every frame written, ~80 MB on the dev
    // machine); passes until nothing is new: about one restart a half second.
    expect(restarts).toBeGreaterThanOrEqual(2);
    expect(walBytes).toBeLessThan(64 * 1024 * 1024);
    const reopened = await openSqliteTracker(path);
    expect((await reopened.story(`Q${written - 1}`))?.subject).toBe(`report ${written - 1}`);
    await reopened.close();
  }, 20_000);

  it("gives the checkpoints back to the writer when the thread cannot run", async () => {
    const writer = new Database(":memory:");
    const failures: Error[] = [];
    const missing = join(mkdtempSync(join(tmpdir(), "moat-checkpoint-")), "gone.sqlite");
    const checkpointer = startCheckpointer(writer, missing, (error) => failures.push(error));
    expect(writer.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    expect(await until(() => failures.length > 0, 5_000)).toBe(true);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.message).toMatch(/SQLITE_CANTOPEN/);
    expect(checkpointer.threaded()).toBe(false);
    expect(writer.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    await checkpointer.close();
    writer.close();
  });

  it("stops with the tracker: close() waits for the thread, and the database reopens whole", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "moat-checkpoint-")), "tracker.sqlite");
    const failures: Error[] = [];
    const tracker = await openSqliteTracker(path, (error) => failures.push(error));
    await tracker.audit({ at: 1, actor: "test", action: "noted", detail: "before close" });
    await tracker.close();
    expect(failures).toEqual([]); // a stop asked for is not a failure
    const reopened = await openSqliteTracker(path);
    expect((await reopened.auditLog()).map((e) => e.detail)).toEqual(["before close"]);
    await reopened.close();
  });

  it("keeps the process running until an awaited close() is done, though an open tracker does not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-checkpoint-"));
    const script = join(dir, "close.ts");
    // Nothing else keeps this process running: only the close under way can.
    writeFileSync(
      script,
      [
        `import { openSqliteTracker } from ${JSON.stringify(join(ROOT, "gateway", "store", "tracker.ts"))};`,
        `void (async () => {`,
        `  const tracker = await openSqliteTracker(${JSON.stringify(join(dir, "tracker.sqlite"))});`,
        `  await tracker.audit({ at: 1, actor: "test", action: "noted", detail: "x" });`,
        `  await tracker.close();`,
        `  console.log("after close");`,
        // A second tracker left open: the process still ends by itself.
        `  await openSqliteTracker(${JSON.stringify(join(dir, "other.sqlite"))});`,
        `})();`,
      ].join("\n"),
    );
    const run = await runTsx(script, []);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("after close\n");
    expect(existsSync(join(dir, "tracker.sqlite-wal"))).toBe(false); // closed cleanly: no WAL left
  });
});
