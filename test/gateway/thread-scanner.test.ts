/**
 * The verdict in its own thread (filters/thread-scanner.ts): the same verdict as the scanner in
 * the gateway's thread, for a message in memory and for one still arriving into a spool file
 * (past the part sent with its bytes, the thread reads the file); the directory's people reach
 * it when the directory changes; a thread that dies fails its messages and the next one starts
 * a new thread.
 */
import { mkdtempSync, readdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayConfig, parseGatewayConfig } from "../../gateway/config";
import { embeddedDefaultConfig } from "../../gateway/default-config";
import { createDirectory } from "../../gateway/directory/directory";
import { createScannerFromConfig, openBayesStoreFor } from "../../gateway/filters";
import type { Verdict } from "../../gateway/filters/pipeline";
import { bufferSource } from "../../gateway/filters/source";
import {
  type GatewayScanner,
  createGatewayScanner,
  createThreadScanner,
  verdictPlacement,
} from "../../gateway/filters/thread-scanner";
import { createLogger } from "../../gateway/log";
import { createSpool } from "../../gateway/queue/spool";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";
import { EXE_BYTES, message } from "../helpers/mail-fixtures";

const input = {
  mailFrom: "carl@partner.example",
  rcptTo: ["anna.berg@northwind.example"],
  clientIp: "203.0.113.9",
  helo: "mx.partner.example",
  tls: true,
  direction: "inbound",
} as const;

let dns: DnsServer;
let config: GatewayConfig;
const scanners: GatewayScanner[] = [];
const log = createLogger({ level: "error", write: () => undefined });

beforeAll(async () => {
  dns = await startDnsServer({
    "partner.example": { TXT: ["v=spf1 ip4:203.0.113.9 -all"] },
    "_dmarc.partner.example": { TXT: ["v=DMARC1; p=reject"] },
  });
  const document = embeddedDefaultConfig();
  config = parseGatewayConfig({
    ...document,
    dataDir: mkdtempSync(join(tmpdir(), "moat-thread-")),
    dns: { servers: [dns.address] },
    policy: { ...document.policy, bannedExtensions: ["exe"], banned: "quarantine" },
  });
});
afterAll(async () => {
  await Promise.all(scanners.map((s) => s.close()));
  await dns.close();
});

const threadScanner = (entry?: string) => {
  const scanner = createThreadScanner(config, log, entry);
  scanners.push(scanner);
  return scanner;
};
/** What a user sees of a verdict (the reasons' text, not object identity). */
const seen = (verdict: Verdict) => ({
  category: verdict.category,
  action: verdict.action,
  reasons: verdict.reasons.map((r) => `${r.detector} ${r.symbol ?? ""} ${r.category ?? ""}: ${r.detail}`),
  headers: verdict.headers,
});

describe("the verdict in its own thread", () => {
  it("is the verdict the gateway's thread would give", async () => {
    const bayes = openBayesStoreFor(config);
    const here = createScannerFromConfig(config, bayes ? { bayes } : {});
    const thread = threadScanner();
    const messages = [
      message({ text: "Hello, the minutes are attached." }),
      message({ html: '<p>Your mailbox is full. <a href="http://203.0.113.50/login">Log in to Microsoft 365</a></p>' }),
      message({ text: "Invoice", attachments: [{ filename: "invoice.exe", content: EXE_BYTES }] }),
      message({ from: "Anna Berg <ceo.office@gmail.test>", text: "Are you at your desk?" }),
    ];
    for (const raw of messages) {
      const [mine, theirs] = await Promise.all([
        here.scan({ ...input, source: bufferSource(raw) }),
        thread.scan({ ...input, source: bufferSource(raw) }),
      ]);
      expect(seen(theirs)).toEqual(seen(mine));
    }
    // Authentication ran in the thread (the SPF record above passes for this client).
    const verdict = await thread.scan({ ...input, source: bufferSource(messages[0]!) });
    expect(verdict.headers.join("\n")).toMatch(/spf=pass/);
    expect(seen(await thread.scan({ ...input, source: bufferSource(messages[2]!) })).category).toBe("banned");
  }, 60_000);

  it("gives each of many messages begun in the same moment its own verdict", async () => {
    // What crosses to the thread in one event-loop turn goes as one batch, and the answers come
    // back in batches too: twenty messages of four kinds, interleaved, each keeps its verdict.
    const thread = threadScanner();
    const kinds = [
      { raw: message({ text: "Hello, the minutes are attached." }), category: "clean" },
      {
        raw: message({
          html: '<p>Your mailbox is full. <a href="http://203.0.113.50/login">Log in to Microsoft 365</a></p>',
        }),
        category: "phishing",
      },
      {
        raw: message({ text: "Invoice", attachments: [{ filename: "invoice.exe", content: EXE_BYTES }] }),
        category: "banned",
      },
      { raw: message({ from: "Anna Berg <ceo.office@gmail.test>", text: "Are you at your desk?" }), category: "clean" },
    ];
    const expected = await Promise.all(
      kinds.map(async (k) => seen(await thread.scan({ ...input, source: bufferSource(k.raw) }))),
    );
    expect(expected.map((v) => v.category)).toEqual(kinds.map((k) => k.category));
    const order = Array.from({ length: 20 }, (_, i) => (i * 3) % kinds.length);
    const verdicts = await Promise.all(
      order.map((k) => thread.scan({ ...input, source: bufferSource(kinds[k]!.raw) })),
    );
    expect(verdicts.map(seen)).toEqual(order.map((k) => expected[k]));
  }, 60_000);

  it("follows a message arriving into the spool and reads past the part sent to it from the file", async () => {
    const thread = threadScanner();
    const spool = createSpool(join(config.dataDir, "queue-follow"));
    await spool.recover();
    // 600 KB of text before the attachment: the thread gets the first 256 KB with their bytes,
    // and finds the banned attachment only by reading the rest from the tmp file.
    const raw = message({
      text: "Quarterly figures follow.\r\n".repeat(22_000),
      attachments: [{ filename: "figures.exe", content: EXE_BYTES }],
    });
    expect(raw.length).toBeGreaterThan(550_000);
    const chunks = Array.from({ length: Math.ceil(raw.length / 16_384) }, (_, i) =>
      raw.subarray(i * 16_384, (i + 1) * 16_384),
    );
    let verdict: Verdict | undefined;
    async function* slowly() {
      for (const chunk of chunks) {
        yield chunk;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    await spool.accept(
      {
        mailFrom: input.mailFrom,
        rcptTo: input.rcptTo,
        receivedAt: new Date().toISOString(),
        client: { ip: input.clientIp, helo: input.helo, tls: true },
      },
      Buffer.alloc(0),
      Readable.from(slowly()),
      () => false,
      undefined,
      async (source) => {
        expect(source.feed).toBeDefined();
        verdict = await thread.scan({ ...input, source });
        return { to: "quarantine" };
      },
    );
    expect(verdict?.category).toBe("banned");
    expect(verdict?.reasons.map((r) => r.detail).join("\n")).toContain("figures.exe");
  }, 60_000);

  it("learns the directory's people when the directory changes", async () => {
    const thread = threadScanner();
    const impostor = message({ from: "Anna Berg <ceo.office@gmail.test>", text: "Are you at your desk?" });
    const withAnna = createDirectory([
      { primary: "anna.berg@northwind.example", aliases: [], displayName: "Anna Berg", kind: "user", source: "graph" },
    ]);
    const withoutAnna = createDirectory([
      { primary: "jo@northwind.example", aliases: [], displayName: "Jo Lind", kind: "user", source: "graph" },
    ]);
    const categoryWith = async (directory: typeof withAnna) =>
      (await thread.scan({ ...input, source: bufferSource(impostor), directory })).category;
    expect(await categoryWith(withAnna)).toBe("impersonation");
    expect(await categoryWith(withoutAnna)).toBe("clean");
    expect(await categoryWith(withAnna)).toBe("impersonation");
  }, 60_000);

  it("learns a released message into the Bayes database the gateway's thread reads", async () => {
    const thread = threadScanner();
    const store = openBayesStoreFor(config)!;
    const before = store.totals().ham;
    const raw = message({ subject: "Minutes", text: "The minutes from Tuesday, with the budget figures." });
    expect(await thread.learn(raw, "ham")).toBe("learned");
    expect(await thread.learn(raw, "ham")).toBe("unchanged");
    expect(store.totals().ham).toBe(before + 1);
    store.close();
  }, 60_000);

  it("fails the messages of a thread that dies, and starts a new one for the next", async () => {
    const entry = join(__dirname, "../helpers/crashing-scan-thread.cjs");
    const thread = threadScanner(entry);
    const raw = message({ text: "Hello." });
    expect((await thread.scan({ ...input, source: bufferSource(raw) })).action).toBe("deliver");
    // Its kernel thread id, for loopCpu (loop-cpu.ts): one of this process's threads, not the loop's.
    const first = thread.osThreadId();
    expect(readdirSync("/proc/self/task").map(Number)).toContain(first);
    expect(first).not.toBe(process.pid);
    await expect(
      thread.scan({ ...input, mailFrom: "crash@partner.example", source: bufferSource(raw) }),
    ).rejects.toThrow(/scan thread exited \(code 3\)/);
    expect(thread.osThreadId()).toBeUndefined(); // none runs
    expect((await thread.scan({ ...input, source: bufferSource(raw) })).action).toBe("deliver");
    const second = thread.osThreadId();
    expect(second).not.toBe(first);
    expect(readdirSync("/proc/self/task").map(Number)).toContain(second);
  }, 60_000);
});

describe("where the verdict runs (filters.scanThread)", () => {
  const notAsked = () => {
    throw new Error("the CPUs were counted for a fixed setting");
  };

  it('"auto" gives the verdict a thread of its own from two usable CPUs; true and false are kept as set', () => {
    expect(verdictPlacement("auto", () => 1)).toEqual({
      ownThread: false,
      why: "filters.scanThread is auto and 1 CPU is usable",
    });
    expect(verdictPlacement("auto", () => 2)).toEqual({
      ownThread: true,
      why: "filters.scanThread is auto and 2 CPUs are usable",
    });
    expect(verdictPlacement(true, notAsked).ownThread).toBe(true);
    expect(verdictPlacement(false, notAsked).ownThread).toBe(false);
    expect(parseGatewayConfig(embeddedDefaultConfig()).filters.scanThread).toBe("auto");
  });

  /** Threads of this process now (the OS's count: a worker is one more). */
  const osThreads = () => readdirSync("/proc/self/task").length;

  it.each([
    [1, "the gateway's thread", 0],
    [2, "a thread of its own", 1],
  ])(
    "with %i usable CPU(s) the gateway runs it in %s, and says so at start-up",
    async (cpus, where, more) => {
      await stat(tmpdir()); // libuv's pool is started before the count
      const lines: string[] = [];
      const logged = createLogger({ level: "info", write: (line) => lines.push(line) });
      const before = osThreads();
      const scanner = await createGatewayScanner(
        { ...config, filters: { ...config.filters, scanThread: "auto" } },
        undefined,
        logged,
        () => cpus,
      );
      scanners.push(scanner);
      expect(osThreads() - before).toBe(more);
      expect(lines.join("\n")).toContain(
        `info the verdict runs in ${where} why="filters.scanThread is auto and ${cpus} CPU`,
      );
      const verdict = await scanner.scan({ ...input, source: bufferSource(message({ text: "Hello." })) });
      expect(verdict.action).toBe("deliver");
      expect(verdict.headers.join("\n")).toMatch(/spf=pass/);
      await scanner.close();
      expect(osThreads()).toBe(before);
    },
    60_000,
  );
});
