/**
 * Each detector on fixtures: a positive and a near miss that must stay negative, so a detector
 * that flags everything fails as surely as one that flags nothing.
 */
import { domainToASCII } from "node:url";
import { describe, expect, it } from "vitest";
import { createDirectory, recordsFromStaticUsers } from "../../gateway/directory/directory";
import { createAttachmentFilter } from "../../gateway/filters/attachments";
import { createImpersonationFilter } from "../../gateway/filters/impersonation";
import { createInfomailFilter } from "../../gateway/filters/infomail";
import { editDistance, lookalikeOf, skeleton } from "../../gateway/filters/lookalike";
import { parseMessage } from "../../gateway/filters/message";
import { createPhishingFilter } from "../../gateway/filters/phishing";
import type { Filter, MessageContext } from "../../gateway/filters/types";
import { EXE_BYTES, PDF_BYTES, markEncrypted, message, zip } from "../helpers/mail-fixtures";
import { bufferSource } from "../../gateway/filters/source";

const DOMAINS = new Set(["northwind.example", "northwind-traders.example"]);
const directory = createDirectory(
  recordsFromStaticUsers([
    { address: "anna.berg@northwind.example", displayName: "Anna Berg", aliases: [] },
    { address: "ben@northwind.example", displayName: "Ben", aliases: [] },
  ]),
);

async function run(filter: Filter, raw: Buffer, envelope: Partial<MessageContext> = {}) {
  const parsed = await parseMessage(raw);
  const result = await filter.run({
    mailFrom: "carl@partner.example",
    rcptTo: ["anna.berg@northwind.example"],
    clientIp: "203.0.113.5",
    helo: "mail.partner.example",
    tls: true,
    direction: "inbound",
    source: bufferSource(raw),
    parsed,
    domains: DOMAINS,
    directory,
    ...envelope,
  });
  return result.findings;
}
const categories = (findings: readonly { category?: string }[]) => findings.map((f) => f.category).filter(Boolean);
const symbols = (findings: readonly { symbol?: string }[]) => findings.map((f) => f.symbol);

describe("infomail", () => {
  const filter = createInfomailFilter();
  it("recognises a newsletter by its bulk signals", async () => {
    const findings = await run(
      filter,
      message({
        from: "Contoso Supplies <news@em.contoso-supplies.example>",
        headers: {
          "List-Unsubscribe": "<https://em.contoso-supplies.example/u?id=1>, <mailto:unsub@contoso-supplies.example>",
          "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
          "X-Mailgun-Sid": "WyI0ZTM",
        },
        html: '<p>Spring catalogue!</p><a href="https://em.contoso-supplies.example/unsubscribe?id=1">Unsubscribe</a>',
      }),
      { mailFrom: "bounces+1234=anna.berg=northwind.example@em.contoso-supplies.example" },
    );
    expect(categories(findings)).toEqual(["infomail"]);
    expect(findings[0]?.detail).toMatch(/List-Unsubscribe\(2\).*platform:x-mailgun-sid/);
  });
  it("leaves a person's mail that mentions unsubscribing alone", async () => {
    const findings = await run(
      filter,
      message({ text: "Hi Anna, can you unsubscribe me from the board list? Thanks, Carl" }),
    );
    expect(categories(findings)).toEqual([]);
  });
  it("a forwarded newsletter (one signal left) stays below the threshold", async () => {
    const findings = await run(
      filter,
      message({ html: 'FYI <a href="https://news.example/unsubscribe">unsubscribe</a>' }),
    );
    expect(categories(findings)).toEqual([]);
    expect(symbols(findings)).toEqual(["BULK_SIGNALS"]);
  });
  it.each([
    ["the HTML part", "Spring catalogue", "<p>View this email in your browser</p>"],
    ["the text part", "Read the online version: https://news.example/v/1", "<p>Spring</p>"],
  ])("sees the 'view in browser' line in %s of text and HTML alternatives", async (_, text, html) => {
    const raw = [
      "From: news@news.example",
      "To: anna.berg@northwind.example",
      "Subject: Spring",
      'Content-Type: multipart/alternative; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain",
      "",
      text,
      "--b",
      "Content-Type: text/html",
      "",
      html,
      "--b--",
      "",
    ].join("\r\n");
    const findings = await run(filter, Buffer.from(raw));
    expect(findings[0]?.detail).toMatch(/view-in-browser\(1\)/);
  });
});

describe("attachments", () => {
  const filter = createAttachmentFilter({ bannedExtensions: ["exe", "js", "vbs", "scr", "iso"] });
  const withAttachment = (filename: string, content: Buffer) =>
    message({ text: "see attached", attachments: [{ filename, content }] });

  it("bans by extension and by true type", async () => {
    expect(symbols(await run(filter, withAttachment("setup.exe", EXE_BYTES)))).toEqual(["BANNED_EXTENSION"]);
    expect(symbols(await run(filter, withAttachment("invoice.pdf", EXE_BYTES)))).toEqual(["BANNED_TRUE_TYPE"]);
    expect(symbols(await run(filter, withAttachment("invoice.pdf.exe", EXE_BYTES)))).toEqual(["DOUBLE_EXTENSION"]);
    expect(symbols(await run(filter, withAttachment("photo\u202Egpj.exe", EXE_BYTES)))).toContain("RTL_OVERRIDE");
  });
  it("passes a real PDF, a .docx (a zip inside) and a zip of documents", async () => {
    expect(await run(filter, withAttachment("invoice.pdf", PDF_BYTES))).toEqual([]);
    const docx = await zip({ "[Content_Types].xml": "<Types/>", "word/document.xml": "<w:document/>" });
    expect(await run(filter, withAttachment("report.docx", docx))).toEqual([]);
    const documents = await zip({ "a.pdf": PDF_BYTES, "notes.txt": "hello" });
    expect(await run(filter, withAttachment("docs.zip", documents))).toEqual([]);
  });
  it("looks inside zips, also nested ones", async () => {
    const inner = await zip({ "run.exe": EXE_BYTES });
    const outer = await zip({ "readme.txt": "x", "more.zip": inner });
    const findings = await run(filter, withAttachment("bundle.zip", outer));
    expect(findings.map((f) => f.detail)).toEqual(["bundle.zip/more.zip/run.exe: .exe is banned by policy"]);
    const disguised = await zip({ "scan.pdf": EXE_BYTES });
    expect(symbols(await run(filter, withAttachment("scans.zip", disguised)))).toEqual(["BANNED_TRUE_TYPE"]);
  });
  it("bans an archive it cannot inspect: encrypted, too deep, a bomb, a broken zip", async () => {
    const encrypted = markEncrypted(await zip({ "secret.txt": "hello" }));
    expect((await run(filter, withAttachment("locked.zip", encrypted)))[0]).toMatchObject({
      category: "banned",
      symbol: "ARCHIVE_UNINSPECTABLE",
      detail: "locked.zip/secret.txt: encrypted",
    });
    let deep = await zip({ "a.txt": "a" });
    for (let i = 0; i < 4; i++) deep = await zip({ [`level${i}.zip`]: deep });
    expect((await run(filter, withAttachment("deep.zip", deep)))[0]?.detail).toMatch(/nested deeper than 3/);
    const bomb = await zip({ "zeros.bin": Buffer.alloc(20 * 1024 * 1024) });
    expect(bomb.length).toBeLessThan(100_000);
    expect((await run(filter, withAttachment("bomb.zip", bomb)))[0]?.detail).toMatch(/decompression bomb/);
    const broken = Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(100, 7)]);
    expect((await run(filter, withAttachment("broken.zip", broken)))[0]?.detail).toMatch(/not a readable zip/);
  });
});

describe("phishing", () => {
  const filter = createPhishingFilter();
  it("flags a link whose text shows another site, IP-literal links, lookalike and punycode hosts", async () => {
    const findings = await run(
      filter,
      message({
        html: [
          '<a href="https://login.evil.example/x">https://www.mybank.example/login</a>',
          '<a href="http://198.51.100.7/pay">Pay now</a>',
          '<a href="https://northwlnd.example/reset">reset your password</a>',
          `<a href="https://${domainToASCII("nоrthwind.example")}/">portal</a>`, // Cyrillic о
        ].join(" "),
      }),
    );
    expect(symbols(findings)).toEqual([
      "LINK_TEXT_MISMATCH",
      "LINK_IP_LITERAL",
      "LINK_LOOKALIKE",
      "LINK_PUNYCODE_LOOKALIKE",
    ]);
    expect(new Set(categories(findings))).toEqual(new Set(["phishing"]));
  });
  it("flags an HTML attachment with a password form", async () => {
    const page = Buffer.from(
      '<html><form action="https://collect.example"><input type="password" name="p"></form></html>',
    );
    const findings = await run(
      filter,
      message({
        text: "see attached",
        attachments: [{ filename: "Invoice.html", content: page, contentType: "text/html" }],
      }),
    );
    expect(symbols(findings)).toEqual(["HTML_CREDENTIAL_FORM"]);
  });
  it("leaves honest links alone: same site shown and linked, our own domains, plain text", async () => {
    const findings = await run(
      filter,
      message({
        html: [
          '<a href="https://www.mybank.example/login?x=1">mybank.example</a>',
          '<a href="https://intranet.northwind.example/">https://intranet.northwind.example</a>',
          '<a href="https://shop.example.co.uk/a">https://www.example.co.uk</a>',
          '<a href="https://docs.partner.example/">Read the docs</a>',
        ].join(" "),
      }),
    );
    expect(findings).toEqual([]);
  });
});

describe("impersonation", () => {
  const filter = createImpersonationFilter();
  it("flags an outsider using an internal person's name, and lookalike sender domains", async () => {
    const name = await run(filter, message({ from: '"Anna  Berg" <anna.berg.office@freemail.example>' }));
    expect(symbols(name)).toEqual(["DISPLAY_NAME"]);
    const domain = await run(filter, message({ from: "Payroll <payroll@n0rthwind.example>" }), {
      mailFrom: "payroll@n0rthwind.example",
    });
    expect(symbols(domain)).toEqual(["LOOKALIKE_DOMAIN"]);
  });
  it("leaves alone: the real person from inside, a one-word name, a different name, outbound mail", async () => {
    expect(await run(filter, message({ from: "Anna Berg <anna.berg@northwind.example>" }))).toEqual([]);
    expect(await run(filter, message({ from: "Ben <ben@freemail.example>" }))).toEqual([]);
    expect(await run(filter, message({ from: "Anna Bergström <anna@freemail.example>" }))).toEqual([]);
    expect(await run(filter, message({ from: '"Anna Berg" <x@freemail.example>' }), { direction: "outbound" })).toEqual(
      [],
    );
  });
});

describe("lookalike domains", () => {
  it("reads confusable spellings alike and counts typing slips", () => {
    expect(skeleton("nоrthwind.example")).toBe(skeleton("northwind.example")); // Cyrillic о
    expect(skeleton(domainToASCII("nörthwind.example"))).toBe(skeleton("northwind.example"));
    expect(editDistance("northwind", "nortwhind")).toBe(1); // swapped neighbours
    expect(editDistance("northwind", "northwind")).toBe(0);
  });
  it("names the imitated domain; ours, our subdomains and unrelated domains are not lookalikes", () => {
    for (const candidate of [
      "northwlnd.example",
      "northwind.example.evil.test",
      "nortwind.example",
      "rnorthwind.example",
    ])
      expect(lookalikeOf(candidate, DOMAINS), candidate).toBe("northwind.example");
    for (const candidate of ["northwind.example", "mail.northwind.example", "contoso.example", "partner.example"])
      expect(lookalikeOf(candidate, DOMAINS), candidate).toBeUndefined();
  });
  it("remembers answers per set of customer domains, never across sets", () => {
    expect(lookalikeOf("nortwind.example", DOMAINS)).toBe("northwind.example");
    expect(lookalikeOf("nortwind.example", DOMAINS)).toBe("northwind.example"); // asked again
    expect(lookalikeOf("nortwind.example", new Set(["contoso.example"]))).toBeUndefined();
    expect(lookalikeOf("nortwind.example", new Set(["northwind.example"]))).toBe("northwind.example");
    expect(lookalikeOf("contso.example", new Set(["contoso.example"]))).toBe("contoso.example");
  });
});
