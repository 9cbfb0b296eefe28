/**
 * Hostile MIME through the whole verdict (every detector that needs no external engine):
 * each message gets a verdict, in bounded time — never a crash or a hang.
 */
import { describe, expect, it } from "vitest";
import { createContentFilters } from "../../gateway/filters";
import { createScanner } from "../../gateway/filters/pipeline";
import { createRuleMatcher } from "../../gateway/rules/rules";
import { quarantineEverything, zip } from "../helpers/mail-fixtures";
import { bufferSource } from "../../gateway/filters/source";

const POLICY = quarantineEverything(["exe"]);
const scanner = createScanner({
  filters: createContentFilters(["exe"]),
  rules: createRuleMatcher([]),
  policy: POLICY,
  domains: ["northwind.example"],
  onEngineFailure: "tempfail",
});
const scan = (raw: Buffer) =>
  scanner.scan({
    mailFrom: "x@hostile.example",
    rcptTo: ["anna.berg@northwind.example"],
    clientIp: "203.0.113.66",
    helo: "hostile.example",
    tls: false,
    direction: "inbound",
    source: bufferSource(raw),
  });
const head = "From: x@hostile.example\r\nTo: anna.berg@northwind.example\r\nSubject: hostile\r\nMIME-Version: 1.0\r\n";

describe("hostile MIME gets a verdict", () => {
  it("multiparts nested 300 deep", async () => {
    let body = "Content-Type: text/plain\r\n\r\ninnermost\r\n";
    for (let i = 0; i < 300; i++)
      body = `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n${body}\r\n--b${i}--\r\n`;
    const verdict = await scan(Buffer.from(head + body));
    expect(verdict.action).not.toBe("tempfail");
  }, 30_000);

  it("a 1 MB header line, NUL bytes and invalid UTF-8 in headers", async () => {
    const raw = Buffer.concat([
      Buffer.from(`${head}X-Long: ${"a".repeat(1024 * 1024)}\r\nX-Nul: a\u0000b\r\nX-Bad: `),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
      Buffer.from("\r\n\r\nbody\r\n"),
    ]);
    expect((await scan(raw)).action).toBeDefined();
  }, 30_000);

  it("broken encodings and a boundary that never ends", async () => {
    const raw = Buffer.from(
      `${head}Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64@@@\r\n--x\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n<a href=3D"http://192.0.2.1/">x</a>=\r\n--x\r\nContent-Type: application/octet-stream; name="a.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAA`,
    );
    const verdict = await scan(raw);
    expect(verdict.category).toBe("phishing"); // the IP-literal link in the broken QP part
    expect(verdict.reasons.map((r) => r.symbol)).toContain("BANNED_EXTENSION"); // the .exe is still found
  }, 30_000);

  it("2,000 attachments and a zip of 5,000 entries", async () => {
    const parts = Array.from(
      { length: 2000 },
      (_, i) =>
        `--y\r\nContent-Type: text/plain; name="f${i}.txt"\r\nContent-Disposition: attachment; filename="f${i}.txt"\r\n\r\n${i}\r\n`,
    ).join("");
    const many = await scan(Buffer.from(`${head}Content-Type: multipart/mixed; boundary="y"\r\n\r\n${parts}--y--\r\n`));
    expect(many.action).toBeDefined();
    const entries: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) entries[`e${i}.txt`] = "x";
    const archive = (await zip(entries)).toString("base64").replace(/.{76}/g, "$&\r\n");
    const verdict = await scan(
      Buffer.from(
        `${head}Content-Type: multipart/mixed; boundary="z"\r\n\r\n--z\r\nContent-Type: application/zip; name="many.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n${archive}\r\n--z--\r\n`,
      ),
    );
    expect(verdict.reasons.map((r) => r.detail)).toContain("many.zip: more than 1000 entries");
  }, 60_000);

  it("binary garbage that is not a message at all", async () => {
    const garbage = Buffer.alloc(200_000);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919) % 256;
    expect((await scan(garbage)).action).toBeDefined();
  }, 30_000);
});
