/**
 * Authentication against a real DNS server on loopback (SPF, DKIM signed here, DMARC), the
 * rules CSV and its precedence, and the verdict: categories, policy actions, allow rules that
 * need an authenticated sender, engine failures that never pass a message as clean.
 */
import { generateKeyPairSync } from "node:crypto";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { dkimSign } from "mailauth";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Policy } from "../../gateway/config";
import { authInput, createAuthFilter, createDnsResolve } from "../../gateway/filters/auth";
import { createInfomailFilter } from "../../gateway/filters/infomail";
import { createScanner } from "../../gateway/filters/pipeline";
import { EngineUnavailableError, type Filter } from "../../gateway/filters/types";
import { createRuleMatcher, parseRulesCsv } from "../../gateway/rules/rules";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";
import { message } from "../helpers/mail-fixtures";
import { bufferSource, streamOf } from "../../gateway/filters/source";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicKeyBase64 = publicKey.export({ type: "spki", format: "der" }).toString("base64");
const PARTNER_IP = "203.0.113.5";
let dns: DnsServer;

beforeAll(async () => {
  dns = await startDnsServer({
    "partner.example": { TXT: [`v=spf1 ip4:${PARTNER_IP} -all`] },
    "_dmarc.partner.example": { TXT: ["v=DMARC1; p=reject"] },
    "sel1._domainkey.partner.example": {
      TXT: [[`v=DKIM1; k=rsa; p=${publicKeyBase64.slice(0, 200)}`, publicKeyBase64.slice(200)]],
    },
    "shop.example": { TXT: ["v=spf1 ip4:198.51.100.20 -all"] },
    "_dmarc.shop.example": { TXT: ["v=DMARC1; p=quarantine"] },
    "relaxed.example": { TXT: ["v=spf1 ip4:198.51.100.30 -all"] },
    "_dmarc.relaxed.example": { TXT: ["v=DMARC1; p=none"] },
  });
});
afterAll(async () => dns?.close());

const POLICY: Policy = {
  spam: "quarantine",
  infomail: "deliver",
  phishing: "quarantine",
  malware: "reject",
  banned: "quarantine",
  impersonation: "quarantine",
  bannedExtensions: ["exe"],
  maxMessageBytes: 10_000_000,
};

async function signed(raw: Buffer): Promise<Buffer> {
  const { signatures } = await dkimSign(raw, {
    signatureData: [
      {
        signingDomain: "partner.example",
        selector: "sel1",
        privateKey: privateKey.export({ type: "pkcs8", format: "pem" }),
      },
    ],
  } as never);
  return Buffer.concat([Buffer.from(signatures), raw]);
}

function scanner(
  options: { filters?: Filter[]; rules?: string; global?: string; onEngineFailure?: "tempfail" | "hold" } = {},
) {
  const domains = ["northwind.example"];
  const customer = parseRulesCsv(
    options.rules ?? "kind,sender,ip,action\n",
    { file: "stacks/acme/rules.csv", scope: "customer" },
    domains,
  );
  const global = parseRulesCsv(
    options.global ?? "kind,sender,ip,action\n",
    { file: "stacks/global-rules.csv", scope: "global" },
    domains,
  );
  expect([...customer.problems, ...global.problems]).toEqual([]);
  return createScanner({
    filters: options.filters ?? [
      createAuthFilter({ resolve: createDnsResolve([dns.address]), hostname: "mx.northwind.example" }),
      createInfomailFilter(),
    ],
    rules: createRuleMatcher([...customer.rules, ...global.rules]),
    policy: POLICY,
    domains,
    onEngineFailure: options.onEngineFailure ?? "tempfail",
  });
}

const envelope = (raw: Buffer, mailFrom: string, clientIp: string) => ({
  mailFrom,
  rcptTo: ["anna.berg@northwind.example"],
  clientIp,
  helo: "mail.partner.example",
  tls: true,
  direction: "inbound" as const,
  source: bufferSource(raw),
});

describe("sender authentication", () => {
  it("SPF, DKIM and DMARC pass for the real sender, stamped in Authentication-Results", async () => {
    const raw = await signed(message({ from: "Carl <carl@partner.example>" }));
    const verdict = await scanner().scan(envelope(raw, "carl@partner.example", PARTNER_IP));
    expect(verdict.category).toBe("clean");
    expect(verdict.reasons.map((r) => r.symbol)).toEqual(
      expect.arrayContaining(["SPF_PASS", "DKIM_PASS", "DMARC_PASS"]),
    );
    expect(verdict.headers[0]).toMatch(/^Authentication-Results: mx\.northwind\.example;/);
    expect(verdict.headers[0]).toMatch(/dkim=pass[^]*spf=pass[^]*dmarc=pass/);
  });
  it("checks the body of a signed message (a changed body fails DKIM); an unsigned one needs only its headers", async () => {
    const raw = await signed(message({ from: "Carl <carl@partner.example>", text: "the original words" }));
    const changed = Buffer.from(raw.toString("latin1").replace("the original words", "the changed words"), "latin1");
    const verdict = await scanner().scan(envelope(changed, "carl@partner.example", PARTNER_IP));
    expect(verdict.reasons.map((r) => r.symbol)).not.toContain("DKIM_PASS");
    expect(verdict.headers[0]).toMatch(/dkim=(?:neutral|fail)[^]*body hash did not verify/);
    // What mailauth is given: a signed message whole, an unsigned one up to its blank line.
    expect((await buffer(authInput(streamOf(raw)))).equals(raw)).toBe(true);
    const unsigned = message({ from: "Carl <carl@partner.example>", text: "no signature" });
    const headerBlock = unsigned.subarray(0, unsigned.indexOf("\r\n\r\n") + 4);
    expect((await buffer(authInput(streamOf(unsigned)))).equals(headerBlock)).toBe(true);
    // Mixed line ends: the header block ends at its own empty line (LF then CRLF), not at a
    // blank line further down the body, also when the empty line comes split across chunks.
    const mixed = Buffer.from("From: carl@partner.example\nSubject: mixed\n\r\nbody\r\n\r\nmore\r\n", "latin1");
    const mixedBlock = mixed.subarray(0, mixed.indexOf("\n\r\n") + 3);
    expect((await buffer(authInput(streamOf(mixed)))).equals(mixedBlock)).toBe(true);
    const split = mixed.indexOf("\n\r\n") + 1;
    const pieces = Readable.from([mixed.subarray(0, split), mixed.subarray(split)]);
    expect((await buffer(authInput(pieces))).equals(mixedBlock)).toBe(true);
  });

  it("asks DNS once a minute per name: answers and 'no such name' are reused, server failures are not", async () => {
    const server = await startDnsServer({ "partner.example": { TXT: [`v=spf1 ip4:${PARTNER_IP} -all`] } }, [
      "broken.example",
    ]);
    try {
      let clock = 0;
      const resolve = createDnsResolve([server.address], () => clock);
      const asked = (query: string) => server.queries.filter((q) => q === query).length;
      await Promise.all([resolve("partner.example", "TXT"), resolve("Partner.Example", "TXT")]);
      await resolve("partner.example", "TXT");
      for (let i = 0; i < 2; i++) await resolve("nothing.example", "TXT").catch(() => undefined);
      for (let i = 0; i < 2; i++) await resolve("broken.example", "TXT").catch(() => undefined);
      expect([asked("TXT partner.example"), asked("TXT nothing.example")]).toEqual([1, 1]);
      expect(asked("TXT broken.example")).toBeGreaterThanOrEqual(2);
      clock += 61_000;
      expect(await resolve("partner.example", "TXT")).toEqual([[`v=spf1 ip4:${PARTNER_IP} -all`]]);
      expect(asked("TXT partner.example")).toBe(2);
    } finally {
      await server.close();
    }
  });

  it("honours the From domain's DMARC policy: reject -> phishing, quarantine -> spam, none -> a reason only", async () => {
    const forged = await scanner().scan(
      envelope(message({ from: "Carl <carl@partner.example>" }), "carl@partner.example", "192.0.2.99"),
    );
    expect(forged).toMatchObject({ category: "phishing", action: "quarantine" });
    expect(forged.reasons.map((r) => r.symbol)).toContain("DMARC_FAIL_REJECT");
    const shop = await scanner().scan(
      envelope(message({ from: "Shop <sales@shop.example>" }), "sales@shop.example", "192.0.2.99"),
    );
    expect(shop.category).toBe("spam");
    const relaxed = await scanner().scan(
      envelope(message({ from: "R <r@relaxed.example>" }), "r@relaxed.example", "192.0.2.99"),
    );
    expect(relaxed.category).toBe("clean");
    expect(relaxed.reasons.map((r) => r.symbol)).toContain("DMARC_FAIL_NONE");
  });
});

const BULK = (from: string) =>
  message({
    from,
    headers: {
      "List-Unsubscribe": "<https://partner.example/u>",
      "List-Id": "<news.partner.example>",
      Precedence: "bulk",
    },
  });

describe("rules", () => {
  it("an allow rule bypasses infomail for an authenticated sender, and is not applied to a forgery", async () => {
    const rules = "kind,sender,ip,action,comment\nallow,*@partner.example,,,partner news\n";
    const s = scanner({ rules });
    const genuine = await s.scan(
      envelope(await signed(BULK("News <news@partner.example>")), "news@partner.example", PARTNER_IP),
    );
    expect(genuine).toMatchObject({ category: "clean", action: "deliver", rule: { kind: "allow", line: 2 } });
    const forged = await s.scan(envelope(BULK("News <news@partner.example>"), "news@partner.example", "192.0.2.99"));
    expect(forged.category).toBe("phishing"); // DMARC reject, and allow never bypasses phishing
    expect(forged.reasons.find((r) => r.detector === "rules")?.detail).toMatch(
      /NOT applied: the sender is not authenticated/,
    );
    expect(forged.rule).toBeUndefined();
  });

  it("precedence: custom, then block, then allow; the customer's before the global rules", async () => {
    let ran = 0;
    const malware: Filter = {
      name: "fake-av",
      async run() {
        ran++;
        return { findings: [{ detector: "fake-av", category: "malware", detail: "test" }] };
      },
    };
    const s = scanner({
      filters: [malware],
      rules: "kind,sender,ip,action\ncustom,alerts@monitor.example,198.51.100.0/24,\nblock,*@monitor.example,,delete\n",
      global: "kind,sender,ip,action\nblock,*@monitor.example,,reject\nblock,,192.0.2.0/24,\n",
    });
    const custom = await s.scan(envelope(message({}), "alerts@monitor.example", "198.51.100.7"));
    expect(custom).toMatchObject({ category: "clean", action: "deliver", rule: { kind: "custom", scope: "customer" } });
    const customerBlock = await s.scan(envelope(message({}), "alerts@monitor.example", "203.0.113.1"));
    expect(customerBlock).toMatchObject({ action: "delete", rule: { kind: "block", scope: "customer", line: 3 } });
    const globalIp = await s.scan(envelope(message({}), "someone@else.example", "192.0.2.44"));
    expect(globalIp).toMatchObject({
      action: "reject",
      rule: { kind: "block", scope: "global", file: "stacks/global-rules.csv" },
    });
    expect(ran).toBe(0); // rules that decide alone run no detector
    expect(await s.scan(envelope(message({}), "someone@else.example", "203.0.113.1"))).toMatchObject({
      category: "malware",
      action: "reject",
    });
    expect(ran).toBe(1);
  });

  it("reads the CSV with every problem on its line and column, and refuses a same-domain allow", () => {
    const result = parseRulesCsv(
      [
        "kind,sender,ip,action,comment",
        "allow,*@northwind.example,,,our own domain",
        "allow,*@*.northwind.example,,,",
        "block,,10.0.0.0/33,,",
        "custom,x@partner.example,,,",
        "block,spam@x.example,,bounce,",
        "deny,a@b.example,,,",
        'block,"<>",,,null sender',
        "block,*@*.spam.example,2001:db8::/32,delete,",
      ].join("\n"),
      { file: "stacks/acme/rules.csv", scope: "customer" },
      ["northwind.example"],
    );
    expect(result.problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      expect.stringMatching(/^2:2 allowing northwind\.example, the customer's own domain, is refused: anyone can put/),
      expect.stringMatching(/^3:2 allowing northwind\.example/),
      '4:3 "10.0.0.0/33" is not an IP address or CIDR range',
      "5:3 a custom rule needs both a sender and an IP or range",
      '6:4 "bounce" is not a block action (reject or delete)',
      '7:1 "deny" is not a rule kind (allow, block, custom)',
    ]);
    expect(result.rules.map((r) => `${r.kind} ${r.sender ?? ""} ${r.ip ?? ""} ${r.action ?? ""}`)).toEqual([
      "block <>  reject",
      "block *@*.spam.example 2001:db8::/32 delete",
    ]);
    const matcher = createRuleMatcher(result.rules);
    expect(matcher.match({ mailFrom: "", clientIp: "192.0.2.1" }).block?.line).toBe(8);
    expect(matcher.match({ mailFrom: "a@mx.spam.example", clientIp: "2001:db8::5" }).block?.line).toBe(9);
    expect(matcher.match({ mailFrom: "a@mx.spam.example", clientIp: "2001:db9::5" }).block).toBeUndefined();
  });
});

describe("the verdict", () => {
  const failing: Filter = {
    name: "rspamd",
    async run() {
      throw new EngineUnavailableError("rspamd", "connect ECONNREFUSED 127.0.0.1:11333");
    },
  };
  const finding = (category: "spam" | "malware" | "phishing"): Filter => ({
    name: `fake-${category}`,
    async run() {
      return { findings: [{ detector: `fake-${category}`, category, detail: category }] };
    },
  });

  it("takes the most severe category and the policy's action for it", async () => {
    const verdict = await scanner({ filters: [finding("spam"), finding("malware")] }).scan(
      envelope(message({}), "a@b.example", "203.0.113.1"),
    );
    expect(verdict).toMatchObject({ category: "malware", action: "reject" });
    expect(verdict.reasons.map((r) => r.category)).toEqual(["spam", "malware"]);
  });

  it("an engine that is down never lets a message through as clean: tempfail or hold, by policy", async () => {
    const raw = message({});
    expect(await scanner({ filters: [failing] }).scan(envelope(raw, "a@b.example", "203.0.113.1"))).toMatchObject({
      category: "clean",
      action: "tempfail",
      engineFailures: ["rspamd: connect ECONNREFUSED 127.0.0.1:11333"],
    });
    expect(
      await scanner({ filters: [failing], onEngineFailure: "hold" }).scan(envelope(raw, "a@b.example", "203.0.113.1")),
    ).toMatchObject({ action: "hold" });
    // A verdict that already keeps the message away stands.
    expect(
      await scanner({ filters: [failing, finding("phishing")] }).scan(envelope(raw, "a@b.example", "203.0.113.1")),
    ).toMatchObject({ category: "phishing", action: "quarantine" });
  });

  it("a message that is not MIME at all gets a verdict, not a crash", async () => {
    const garbage = Buffer.concat([
      Buffer.from("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"),
      Buffer.alloc(5000, 0xff),
    ]);
    const verdict = await scanner({ filters: [createInfomailFilter()] }).scan(
      envelope(garbage, "a@b.example", "203.0.113.1"),
    );
    expect(["clean", "banned"]).toContain(verdict.category);
  });
});
