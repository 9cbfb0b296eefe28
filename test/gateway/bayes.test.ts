/**
 * The Bayes filter: its store (learning once per message, moving a message between labels),
 * the classifier on a small synthetic corpus, the detector's minimum before it votes, the spam
 * score it shares with rspamd in the verdict, learning from quarantine releases, and
 * `moat learn` followed by `moat scan` on the command line.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { classify, tokenize } from "../../gateway/filters/bayes-classifier";
import { type BayesStore, openBayesStore } from "../../gateway/filters/bayes-store";
import { createBayesFilter, learnMessage } from "../../gateway/filters/bayes";
import { parseMessage } from "../../gateway/filters/message";
import { createScanner } from "../../gateway/filters/pipeline";
import type { Filter, MessageContext } from "../../gateway/filters/types";
import { silentLogger } from "../../gateway/log";
import { createQuarantine } from "../../gateway/quarantine/quarantine";
import { createSpool } from "../../gateway/queue/spool";
import { createRuleMatcher } from "../../gateway/rules/rules";
import { openSqliteTracker } from "../../gateway/store/tracker";
import { splitMbox } from "../../gateway/learn-command";
import { runCli, writeTestConfig } from "../helpers/gateway-process";
import { message, quarantineEverything } from "../helpers/mail-fixtures";
import { bufferSource } from "../../gateway/filters/source";
import { seededRandom } from "../helpers/random";

const SPAM_WORDS =
  "viagra cheap pills discount casino winner lottery claim prize offer bonus credit loan refinance mortgage guaranteed income".split(
    " ",
  );
const HAM_WORDS =
  "meeting agenda quarterly report budget review project deadline invoice attached minutes roadmap release notes team lunch".split(
    " ",
  );
const COMMON_WORDS = "please the this your today about more information thanks regards".split(" ");

function corpusMessage(kind: "spam" | "ham", seed: number): Buffer {
  const next = seededRandom(seed);
  const pick = (words: readonly string[], n: number) =>
    Array.from({ length: n }, () => words[Math.floor(next() * words.length)]).join(" ");
  const own = kind === "spam" ? SPAM_WORDS : HAM_WORDS;
  return message({
    from: kind === "spam" ? `Offers <deals${seed}@promo${seed % 7}.example>` : `Carl Partner <carl@partner.example>`,
    subject: pick(own, 3),
    text: `${pick(own, 12)} ${pick(COMMON_WORDS, 8)} ${pick(own, 6)}`,
  });
}

const context = async (raw: Buffer): Promise<MessageContext> => ({
  mailFrom: "someone@example.net",
  rcptTo: ["anna.berg@northwind.example"],
  clientIp: "203.0.113.7",
  helo: "mail.example.net",
  tls: false,
  direction: "inbound",
  source: bufferSource(raw),
  parsed: await parseMessage(raw),
  domains: new Set(["northwind.example"]),
});

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "moat-bayes-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function trainedStore(name: string, perKind: number): Promise<BayesStore> {
  const store = openBayesStore(join(dir, `${name}.sqlite`));
  for (let i = 0; i < perKind; i++) {
    await learnMessage(store, corpusMessage("spam", i), "spam");
    await learnMessage(store, corpusMessage("ham", 1000 + i), "ham");
  }
  return store;
}

describe("the store", () => {
  it("learns a message once, and moves it when it is learned with the other label", async () => {
    const store = openBayesStore(join(dir, "moves.sqlite"));
    const tokens = tokenize(await parseMessage(corpusMessage("spam", 1)));
    expect(store.learn(tokens, "spam")).toBe("learned");
    expect(store.learn(tokens, "spam")).toBe("unchanged");
    expect(store.totals()).toEqual({ spam: 1, ham: 0 });
    const [token] = tokens;
    expect(store.counts([token as string]).get(token as string)).toEqual({ spam: 1, ham: 0 });

    expect(store.learn(tokens, "ham")).toBe("moved");
    expect(store.totals()).toEqual({ spam: 0, ham: 1 });
    expect(store.counts([token as string]).get(token as string)).toEqual({ spam: 0, ham: 1 });
    store.close();
  });

  it("keeps what it learned across a reopen (another process, the next start)", async () => {
    const path = join(dir, "reopen.sqlite");
    const first = openBayesStore(path);
    await learnMessage(first, corpusMessage("ham", 5), "ham");
    first.close();
    const second = openBayesStore(path);
    expect(second.totals()).toEqual({ spam: 0, ham: 1 });
    expect(await learnMessage(second, corpusMessage("ham", 5), "ham")).toBe("unchanged");
    second.close();
  });

  it("sees what another connection learned from its next read (moat learn beside a running gateway)", async () => {
    const path = join(dir, "beside.sqlite");
    const gateway = openBayesStore(path);
    const learner = openBayesStore(path);
    expect(gateway.totals()).toEqual({ spam: 0, ham: 0 });
    await learnMessage(learner, corpusMessage("spam", 7), "spam");
    expect(gateway.totals()).toEqual({ spam: 1, ham: 0 });
    await learnMessage(gateway, corpusMessage("ham", 7), "ham"); // its own write (a release)
    expect(gateway.totals()).toEqual({ spam: 1, ham: 1 });
    expect(learner.totals()).toEqual({ spam: 1, ham: 1 });
    await learnMessage(learner, corpusMessage("ham", 7), "spam"); // moved by the other
    expect(gateway.totals()).toEqual({ spam: 2, ham: 0 });
    const [token] = tokenize(await parseMessage(corpusMessage("ham", 7)));
    expect(gateway.counts([token as string]).get(token as string)?.spam).toBeGreaterThan(0);
    gateway.close();
    learner.close();
  });
});

describe("the classifier", () => {
  it("scores unseen spam near 1, unseen ham near 0, and mail of words it never saw as unsure", async () => {
    const store = await trainedStore("classify", 40);
    const probabilityOf = async (raw: Buffer) => {
      const tokens = tokenize(await parseMessage(raw));
      return classify(tokens, store.counts(tokens), store.totals()).probability;
    };
    expect(await probabilityOf(corpusMessage("spam", 500))).toBeGreaterThan(0.95);
    expect(await probabilityOf(corpusMessage("ham", 1500))).toBeLessThan(0.05);
    const stranger = message({
      from: "Zed <zed@elsewhere.example>",
      subject: "xylophone quokka",
      text: "zeppelin marmalade harpsichord",
    });
    const unsure = await probabilityOf(stranger);
    expect(unsure).toBeGreaterThan(0.2);
    expect(unsure).toBeLessThan(0.8);
    store.close();
  });
});

describe("the detector and the spam score", () => {
  it("stays out of the verdict until it has learned the minimum of each kind", async () => {
    const store = await trainedStore("minimum", 5);
    const filter = createBayesFilter({ store, minSpam: 10, minHam: 10 });
    const result = await filter.run(await context(corpusMessage("spam", 600)));
    expect(result.spamScore).toBeUndefined();
    expect(result.findings[0]).toMatchObject({ symbol: "BAYES_NOT_TRAINED" });
    expect(result.findings[0]?.detail).toContain("learned 5 spam and 5 ham, needs 10 and 10");
    store.close();
  });

  it("adds to the spam score: spam it recognises reaches the threshold alone, ham pulls the score down", async () => {
    const store = await trainedStore("score", 30);
    const bayes = createBayesFilter({ store, minSpam: 20, minHam: 20 });
    /** rspamd's part, fixed: a score that alone stays under the threshold of 6. */
    const engine = (score: number): Filter => ({
      name: "rspamd",
      run: async () => ({ findings: [{ detector: "rspamd", score, detail: `score ${score}` }], spamScore: score }),
    });
    const scanner = (filters: Filter[]) =>
      createScanner({
        filters,
        rules: createRuleMatcher([]),
        policy: quarantineEverything([]),
        domains: ["northwind.example"],
        onEngineFailure: "tempfail",
        spamThreshold: 6,
      });
    const input = (raw: Buffer) => ({
      mailFrom: "someone@example.net",
      rcptTo: ["anna.berg@northwind.example"],
      clientIp: "203.0.113.7",
      helo: "mail.example.net",
      tls: false,
      direction: "inbound" as const,
      source: bufferSource(raw),
    });

    const spam = await scanner([bayes]).scan(input(corpusMessage("spam", 700)));
    expect(spam.category).toBe("spam");
    const sum = spam.reasons.find((r) => r.symbol === "SPAM_SCORE");
    expect(sum?.detail).toMatch(/reaches the threshold of 6 \(bayes \+\d/);
    expect(spam.reasons.find((r) => r.detector === "bayes")?.symbol).toBe("BAYES_SPAM");

    // rspamd 5 alone is not spam; with Bayes's ham vote it is even further from it.
    expect((await scanner([engine(5)]).scan(input(corpusMessage("ham", 1700)))).category).toBe("clean");
    const ham = await scanner([engine(9), bayes]).scan(input(corpusMessage("ham", 1701)));
    expect(ham.category).toBe("clean");
    expect(ham.reasons.find((r) => r.detector === "bayes")?.symbol).toBe("BAYES_HAM");
    // rspamd 9 alone would be spam: the threshold applies to the sum.
    expect((await scanner([engine(9)]).scan(input(corpusMessage("ham", 1702)))).category).toBe("spam");
    store.close();
  });
});

describe("learning from the quarantine", () => {
  it("a released spam message is learned as ham; a released phishing message is not learned", async () => {
    const spool = createSpool(join(dir, "queue"));
    await spool.recover();
    const tracker = await openSqliteTracker(join(dir, "tracker.sqlite"));
    const store = openBayesStore(join(dir, "release.sqlite"));
    const quarantine = createQuarantine({
      spool,
      tracker,
      dataDir: dir,
      onReleased: () => undefined,
      learnHam: (raw) => learnMessage(store, raw, "ham").then(() => undefined),
      log: silentLogger,
    });
    const keep = async (category: string, seed: number) => {
      const raw = corpusMessage("ham", seed);
      const { id } = await spool.accept(
        {
          mailFrom: "carl@partner.example",
          rcptTo: ["anna.berg@northwind.example"],
          receivedAt: new Date().toISOString(),
          client: { ip: "203.0.113.9", helo: "x", tls: false },
        },
        Buffer.alloc(0),
        Readable.from([raw]),
        () => false,
        undefined,
        async () => ({ to: "quarantine" }),
      );
      await tracker.recordArrival({
        id,
        receivedAt: Date.now(),
        clientIp: "203.0.113.9",
        helo: "x",
        tls: false,
        mailFrom: "carl@partner.example",
        recipients: ["anna.berg@northwind.example"],
        subject: "s",
        size: raw.length,
        direction: "inbound",
        verdict: { status: "Quarantine", category, rule: null, reasons: [] },
      });
      return { id, raw };
    };
    const spam = await keep("spam", 2001);
    await quarantine.release(spam.id, "alice");
    expect(store.totals()).toEqual({ spam: 0, ham: 1 });
    expect(await learnMessage(store, spam.raw, "ham")).toBe("unchanged");

    const phishing = await keep("phishing", 2002);
    await quarantine.release(phishing.id, "alice");
    expect(store.totals()).toEqual({ spam: 0, ham: 1 });
    store.close();
    await tracker.close();
  });
});

describe("mbox files for moat learn", () => {
  it("splits an mbox export into its messages and unquotes >From lines; a plain .eml stays one message", () => {
    const mbox = Buffer.from(
      [
        "From alice@example.net Sat Jan  3 01:05:34 2026",
        "Subject: one",
        "",
        "first body",
        ">From the desk of Alice",
        "",
        "From bob@example.net Sat Jan  3 01:06:00 2026",
        "Subject: two",
        "",
        "second body",
        "",
        "From carol@example.net Sat Jan  3 01:07:00 2026",
        "Subject: three",
        "",
        "third body",
        "",
      ].join("\n"),
    );
    const messages = splitMbox(mbox).map((m) => m.toString());
    expect(messages).toHaveLength(3);
    expect(messages[0]).toMatch(/^Subject: one\n\nfirst body\nFrom the desk of Alice\n/);
    expect(messages[1]).toMatch(/^Subject: two\n/);
    expect(messages[2]).toMatch(/^Subject: three\n\nthird body\n$/);
    const eml = Buffer.from("Subject: plain\r\n\r\nFrom here on, a body line.\r\n");
    expect(splitMbox(eml)).toEqual([eml]);
  });
});

describe("moat learn, then moat scan", () => {
  it("teaches the config's data directory and the next scan names Bayes in the verdict", async () => {
    const config = writeTestConfig({
      smartHostPort: 1,
      edit: (document) => ({
        ...document,
        filters: { ...document.filters, bayes: { minSpam: 20, minHam: 20 } },
      }),
    });
    const spamDir = join(config.dir, "spam");
    const hamDir = join(config.dir, "ham");
    mkdirSync(spamDir);
    mkdirSync(hamDir);
    for (let i = 0; i < 25; i++) {
      writeFileSync(join(spamDir, `${i}.eml`), corpusMessage("spam", i));
      writeFileSync(join(hamDir, `${i}.eml`), corpusMessage("ham", 1000 + i));
    }
    writeFileSync(join(hamDir, "broken.eml"), Buffer.alloc(0));

    const spam = await runCli(["learn", "--config", config.file, "--spam", spamDir]);
    expect(spam.code).toBe(0);
    expect(spam.stdout).toContain("spam: 25 learned, 0 moved from ham, 0 already known, 0 failed");
    expect(spam.stdout).toContain("not used until it has 20 spam and 20 ham");
    const ham = await runCli(["learn", "--config", config.file, "--ham", hamDir, join(config.dir, "nowhere")]);
    expect(ham.code).toBe(1);
    expect(ham.stdout).toContain(`${join(config.dir, "nowhere")}: ENOENT`);
    expect(ham.stdout).toContain(`${join(hamDir, "broken.eml")}: not learned: the file is empty`);
    expect(ham.stdout).toContain("ham: 25 learned, 0 moved from spam, 0 already known, 2 failed");
    expect(ham.stdout).toContain("Bayes now knows 25 spam and 25 ham: in use");

    const probe = join(config.dir, "probe.eml");
    writeFileSync(probe, corpusMessage("spam", 999));
    const scan = await runCli(["scan", "--config", config.file, probe]);
    const verdict = JSON.parse(scan.stdout.trim().split("\n").at(-1) as string) as {
      category: string;
      reasons: { detector: string; symbol?: string }[];
    };
    expect(verdict.reasons).toContainEqual(expect.objectContaining({ detector: "bayes", symbol: "BAYES_SPAM" }));
    expect(verdict.category).toBe("spam");
    rmSync(config.dir, { recursive: true, force: true });
  }, 60_000);
});
