import { constants, mkdtempSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { createDelivery } from "../../gateway/delivery/scheduler";
import { silentLogger } from "../../gateway/log";
import { openSpoolFile } from "../../gateway/queue/fd-calls";
import { coalescedDirectorySync } from "../../gateway/queue/files";
import { HEAD_MAX_BYTES, HOLD_MAX_BYTES, SpoolSizeExceededError, createSpool } from "../../gateway/queue/spool";

const envelope = {
  mailFrom: "a@outside.example",
  rcptTo: ["jo@acme.com", "ann@acme.com"],
  receivedAt: new Date().toISOString(),
  client: { ip: "192.0.2.1", helo: "mx.outside.example", tls: false },
};

async function freshSpool() {
  const spool = createSpool(mkdtempSync(join(tmpdir(), "moat-spool-")));
  await spool.recover();
  return spool;
}

describe("the durable spool", () => {
  it("acknowledges only a file that is complete in incoming/, with envelope and bytes intact", async () => {
    const spool = await freshSpool();
    const body = Buffer.concat([
      Buffer.from("Subject: x\r\n\r\n"),
      Buffer.from([0xff, 0x00, 0xc3, 0xa9]),
      Buffer.from("\r\n"),
    ]);
    const { id, bytes } = await spool.accept(
      envelope,
      Buffer.from("Received: test\r\n"),
      Readable.from([body]),
      () => false,
    );
    expect(await spool.list("incoming")).toEqual([id]);
    expect(readdirSync(spool.dir("tmp"))).toEqual([]);
    const message = await spool.read("incoming", id);
    expect(message.envelope).toMatchObject({ ...envelope, id });
    const stored = await buffer(message.openMessage());
    expect(bytes).toBe(message.bytes);
    expect(message.bytes).toBe(Buffer.byteLength("Received: test\r\n") + body.length);
    expect(
      readFileSync(join(spool.dir("incoming"), id))
        .subarray(-body.length)
        .equals(body),
    ).toBe(true);
    // What delivery reads back is exactly what was accepted, byte for byte, without the spool header.
    expect(stored.equals(Buffer.concat([Buffer.from("Received: test\r\n"), body]))).toBe(true);
  });

  it("keeps nothing of an oversized message and says why", async () => {
    const spool = await freshSpool();
    let seen = 0;
    const chunks = Array.from({ length: 4 }, () => Buffer.alloc(1000, 97));
    const stream = Readable.from(chunks).on("data", () => (seen += 1));
    await expect(spool.accept(envelope, Buffer.alloc(0), stream, () => seen > 2)).rejects.toBeInstanceOf(
      SpoolSizeExceededError,
    );
    expect(seen).toBe(4); // read to the end, so the client gets its 552 after the data
    expect(await spool.list("incoming")).toEqual([]);
    expect(readdirSync(spool.dir("tmp"))).toEqual([]);
  });

  it("keeps the verdict in the message's own file, and still reads an earlier file with its .meta beside it", async () => {
    const spool = await freshSpool();
    const meta = { headers: ["Authentication-Results: gw.test; spf=pass"], verdict: { category: "spam" } };
    const body = Buffer.from("Subject: x\r\n\r\nhello\r\n");
    const { id } = await spool.accept(
      envelope,
      Buffer.from("Received: test\r\n"),
      Readable.from([body]),
      () => false,
      undefined,
      async (source) => ((await buffer(source.open())).length > 0 ? { to: "quarantine", meta } : { discard: true }),
    );
    expect(readdirSync(spool.dir("quarantine"))).toEqual([id]); // one file, no companion
    await spool.move(id, "quarantine", "incoming"); // a release
    const released = await spool.read("incoming", id);
    expect(released.meta).toEqual(meta);
    expect(
      (await buffer(released.openMessage())).equals(Buffer.concat([Buffer.from("Received: test\r\n"), body])),
    ).toBe(true);
    expect(released.bytes).toBe(Buffer.byteLength("Received: test\r\n") + body.length);

    const json = JSON.stringify({ ...envelope, id: "0OLDFORMAT" });
    writeFileSync(
      join(spool.dir("incoming"), "0OLDFORMAT"),
      `MOAT1 ${Buffer.byteLength(json)}\n${json}\nSubject: old\r\n`,
    );
    writeFileSync(join(spool.dir("incoming"), "0OLDFORMAT.meta"), JSON.stringify(meta));
    await spool.recover(); // as at start-up, when such files are found
    await spool.move("0OLDFORMAT", "incoming", "hold");
    const old = await spool.read("hold", "0OLDFORMAT");
    expect(old.meta).toEqual(meta);
    expect((await buffer(old.openMessage())).toString()).toBe("Subject: old\r\n");
  });

  it.each([
    ["held in memory, and handed over from there", 2_000],
    ["streamed to disk as it comes", 300_000],
  ])("gives delivery the message and its verdict byte for byte when it is %s", async (_, size) => {
    const spool = await freshSpool();
    const meta = { headers: ["Authentication-Results: gw.test; spf=pass"], verdict: { category: "clean" } };
    const body = Buffer.concat([Buffer.from("Subject: x\r\n\r\n"), Buffer.alloc(size, "a\r\n")]);
    const accepted = await spool.accept(
      envelope,
      Buffer.from("Received: test\r\n"),
      Readable.from([body.subarray(0, 1000), body.subarray(1000)]),
      () => false,
      undefined,
      async (source) => ((await buffer(source.open())).length > 0 ? { to: "incoming", meta } : { discard: true }),
    );
    const message = await spool.read("incoming", accepted.id);
    expect(message.meta).toEqual(meta);
    expect(message.envelope).toMatchObject({ ...envelope, id: accepted.id });
    const stored = await buffer(message.openMessage());
    expect(stored.equals(Buffer.concat([Buffer.from("Received: test\r\n"), body]))).toBe(true);
    expect(message.bytes).toBe(stored.length);
    expect((await buffer(message.openMessage())).equals(stored)).toBe(true); // opened again: the same bytes
    // A message the spool held comes back from accept() just as delivery would read it; a large one does not.
    const handed = accepted.message;
    if (stored.length > HOLD_MAX_BYTES) expect(handed).toBeUndefined();
    else {
      expect(handed?.envelope).toEqual(message.envelope);
      expect(handed?.meta).toEqual(meta);
      expect(handed?.bytes).toBe(stored.length);
      expect(handed && (await buffer(handed.openMessage())).equals(stored)).toBe(true);
      expect(handed?.whole?.equals(stored)).toBe(true);
    }
  });

  it.each([
    ["held in memory", 2_000],
    ["streamed to disk", 300_000],
  ])(
    "shows inspect the message's start, without our Received header, when it is %s; its refusal keeps nothing",
    async (_, size) => {
      const spool = await freshSpool();
      const body = Buffer.concat([Buffer.from("Subject: x\r\n\r\n"), Buffer.alloc(size, "a\r\n")]);
      const seen: Buffer[] = [];
      const accept = (refuse: boolean) =>
        spool.accept(
          envelope,
          Buffer.from("Received: test\r\n"),
          Readable.from([body.subarray(0, 1000), body.subarray(1000)]),
          () => false,
          (head) => {
            seen.push(Buffer.from(head));
            return refuse ? new Error("not from this tenant") : undefined;
          },
        );
      const { id } = await accept(false);
      await expect(accept(true)).rejects.toThrow("not from this tenant");
      const start = body.subarray(0, HEAD_MAX_BYTES);
      expect(seen.map((head) => head.equals(start))).toEqual([true, true]);
      expect(await spool.list("incoming")).toEqual([id]);
      expect(readdirSync(spool.dir("tmp"))).toEqual([]);
    },
  );

  it("recovers after a crash: partial files dropped, active/ back to incoming/", async () => {
    const spool = await freshSpool();
    const { id } = await spool.accept(envelope, Buffer.alloc(0), Readable.from([Buffer.from("x\r\n")]), () => false);
    await spool.move(id, "incoming", "active");
    writeFileSync(join(spool.dir("tmp"), "half-written"), "MOAT1 999\n{");
    expect(await spool.recover()).toEqual({ requeued: 1, discardedPartial: 1 });
    expect(await spool.list("incoming")).toEqual([id]);
  });

  it("sets an unreadable queue file aside in corrupt/ instead of deleting it", async () => {
    const spool = await freshSpool();
    writeFileSync(join(spool.dir("incoming"), "0GARBAGE"), "this is not a queue file");
    const delivery = createDelivery({
      spool,
      target: { host: "127.0.0.1", port: 1, tls: "required", verifyCertificate: true, heloName: "gw.test" },
      retry: { minBackoffMs: 60_000, maxBackoffMs: 60_000, maxQueueLifetimeMs: 3_600_000 },
      log: silentLogger,
      attempt: async () => {
        throw new Error("must not be called for a corrupt file");
      },
    });
    await delivery.start();
    for (let i = 0; i < 50 && (await spool.list("corrupt")).length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    await delivery.close();
    expect(await spool.list("corrupt")).toEqual(["0GARBAGE"]);
    expect(readFileSync(join(spool.dir("corrupt"), "0GARBAGE"), "utf8")).toBe("this is not a queue file");
  });

  it("defers only the recipients still pending, with Postfix's backoff, and holds permanent failures", async () => {
    const spool = await freshSpool();
    const now = Date.parse(envelope.receivedAt) + 1000;
    const partial = await spool.accept(envelope, Buffer.alloc(0), Readable.from([Buffer.from("x\r\n")]), () => false);
    const refused = await spool.accept(
      { ...envelope, rcptTo: ["jo@acme.com"] },
      Buffer.alloc(0),
      Readable.from([Buffer.from("y\r\n")]),
      () => false,
    );
    const delivery = createDelivery({
      spool,
      target: { host: "127.0.0.1", port: 1, tls: "required", verifyCertificate: true, heloName: "gw.test" },
      retry: { minBackoffMs: 300_000, maxBackoffMs: 4_000_000, maxQueueLifetimeMs: 432_000_000 },
      log: silentLogger,
      now: () => now,
      attempt: async (_target, env) => ({
        outcomes: new Map(
          env.rcptTo.map((r) => [
            r,
            env.rcptTo.length === 2 && r === "ann@acme.com"
              ? { outcome: "temporary" as const, response: "451 try later" }
              : env.rcptTo.length === 2
                ? { outcome: "delivered" as const, response: "250 ok" }
                : { outcome: "permanent" as const, response: "550 no" },
          ]),
        ),
      }),
    });
    await delivery.start();
    for (let i = 0; i < 100 && (await spool.list("incoming")).length + (await spool.list("active")).length > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    await delivery.close();
    expect(await spool.list("deferred")).toEqual([partial.id]);
    expect((await spool.read("deferred", partial.id)).envelope.rcptTo).toEqual(["ann@acme.com"]);
    expect(await spool.dueAt(partial.id)).toBe(now + 300_000);
    expect(await spool.list("hold")).toEqual([refused.id]);
  });
});

describe("group commit", () => {
  it("shares one directory fsync among concurrent accepts, and every accept waits for one that began after it", async () => {
    const spool = await freshSpool();
    const accepts = Array.from({ length: 20 }, (_, i) =>
      spool.accept(
        { ...envelope, rcptTo: [`u${i}@acme.com`] },
        Buffer.alloc(0),
        Readable.from([Buffer.from(`m${i}\r\n`)]),
        () => false,
      ),
    );
    const ids = (await Promise.all(accepts)).map((a) => a.id);
    expect(new Set(ids).size).toBe(20);
    expect((await spool.list("incoming")).sort()).toEqual([...ids].sort());
  });

  it("runs at most two fsyncs for a burst: the one under way and one for everyone who came during it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-sync-"));
    const sync = coalescedDirectorySync(dir);
    const first = sync();
    const during = Array.from({ length: 10 }, () => sync());
    expect(new Set(during).size).toBe(1); // all later callers share the next fsync
    expect(during[0]).not.toBe(first);
    await Promise.all([first, ...during]);
    await expect(sync()).resolves.toBeUndefined(); // idle again: a fresh fsync
  });

  it("keeps the directory open while mail keeps coming, and closes it once idle", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-sync-"));
    const openOnDir = () =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === dir;
        } catch {
          return false; // closed meanwhile
        }
      });
    const idleCloseMs = 100;
    const sync = coalescedDirectorySync(dir, idleCloseMs);
    for (let round = 0; round < 3; round++) {
      // A trickle: one fsync after another, none overlapping, each on the descriptor the first opened.
      await sync();
      const first = openOnDir();
      expect(first).toHaveLength(1);
      for (let i = 0; i < 5; i++) {
        await sync();
        expect(openOnDir()).toEqual(first);
      }
      await Promise.all([sync(), sync(), sync()]);
      expect(openOnDir()).toEqual(first);
      // Idle: closed, so an idle gateway holds nothing; the next fsync opens it again.
      for (let i = 0; i < 100 && openOnDir().length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(openOnDir()).toEqual([]);
    }
  });
});

describe("a spool file's descriptor", () => {
  it("is closed once and never written after its close, even when its number is open again", async () => {
    const dir = mkdtempSync(join(tmpdir(), "moat-fd-"));
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    const first = await openSpoolFile(join(dir, "first"), flags, 0o600);
    expect(await first.writev([Buffer.from("one "), Buffer.from("two")], 0)).toBe(7);
    expect(await first.write(Buffer.from("ONE"), 0)).toBe(3);
    await first.close();
    // The next file most likely gets the same descriptor number: the first's handle must not touch it.
    const second = await openSpoolFile(join(dir, "second"), flags, 0o600);
    await first.close();
    await expect(first.writev([Buffer.from("stray")])).rejects.toThrow("written after it was closed");
    await expect(first.write(Buffer.from("stray"), 0)).rejects.toThrow("written after it was closed");
    expect(await second.writev([Buffer.from("mine")])).toBe(4);
    await second.close();
    expect(readFileSync(join(dir, "first"), "latin1")).toBe("ONE two");
    expect(readFileSync(join(dir, "second"), "latin1")).toBe("mine");
    // A file that exists already is not opened over (O_EXCL), with the path in the error.
    await expect(openSpoolFile(join(dir, "first"), flags, 0o600)).rejects.toThrow(/EEXIST.*first/);
  });
});

describe("unexpected failures during delivery", () => {
  it("put the message back in deferred/ instead of leaving it in active/", async () => {
    const spool = await freshSpool();
    const { id } = await spool.accept(envelope, Buffer.alloc(0), Readable.from([Buffer.from("x\r\n")]), () => false);
    const delivery = createDelivery({
      spool,
      target: { host: "127.0.0.1", port: 1, tls: "required", verifyCertificate: true, heloName: "gw.test" },
      retry: { minBackoffMs: 60_000, maxBackoffMs: 60_000, maxQueueLifetimeMs: 3_600_000 },
      log: silentLogger,
      attempt: async (_t, env) => ({
        outcomes: new Map(env.rcptTo.map((r) => [r, { outcome: "permanent" as const, response: "550 no" }])),
      }),
      bouncer: { bounce: async () => Promise.reject(new Error("disk full")) },
    });
    await delivery.start();
    for (let i = 0; i < 100 && (await spool.list("deferred")).length === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    await delivery.close();
    expect(await spool.list("deferred")).toEqual([id]);
    expect(await spool.list("active")).toEqual([]);
  });
});
