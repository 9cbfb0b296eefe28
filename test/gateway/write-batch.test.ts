/** Group commit of the tracker's writes (gateway/store/write-batch.ts) on real SQLite. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { createWriteBatch } from "../../gateway/store/write-batch";

function database() {
  const path = join(mkdtempSync(join(tmpdir(), "moat-batch-")), "db.sqlite");
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER NOT NULL)");
  return { db, path };
}

describe("the tracker's write batch", () => {
  it("commits the writes of one event-loop turn together, in order, and each settles when committed", async () => {
    const { db, path } = database();
    const batch = createWriteBatch(db);
    const insert = db.prepare("INSERT INTO t (id, n) VALUES (?, ?)");
    const update = db.prepare("UPDATE t SET n = n + 1 WHERE id = ?");
    const written = [batch.write(() => insert.run("a", 1)), batch.write(() => update.run("a"))];
    const other = new Database(path, { readonly: true });
    expect(other.prepare("SELECT count(*) AS c FROM t").get()).toEqual({ c: 0 }); // nothing before the turn ends
    await Promise.all(written);
    expect(other.prepare("SELECT n FROM t WHERE id = 'a'").get()).toEqual({ n: 2 }); // the update saw the insert
    expect(batch.stats).toMatchObject({ batches: 1, writes: 2, waiting: 0 });
  });

  it("fails a write that breaks a constraint alone; the rest of its batch is kept", async () => {
    const { db } = database();
    const batch = createWriteBatch(db);
    const insert = db.prepare("INSERT INTO t (id, n) VALUES (?, ?)");
    const results = await Promise.allSettled([
      batch.write(() => insert.run("a", 1)),
      batch.write(() => {
        insert.run("b", 2);
        insert.run("a", 3); // duplicate key: this write's own insert of b is undone too
      }),
      batch.write(() => insert.run("c", 4)),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason.message).toMatch(/UNIQUE constraint failed: t.id/);
    expect(db.prepare("SELECT id, n FROM t ORDER BY id").all()).toEqual([
      { id: "a", n: 1 },
      { id: "c", n: 4 },
    ]);
  });
});
