/**
 * The MIME parse and the event loop. The 250 waits for the verdict, and the verdict for the
 * parse: every event-loop turn the parse waits for is a turn behind every other session's I/O.
 * So a message is parsed in a few turns (mailparser's own loop took 6 for a plain message and
 * 19-31 for one with parts; now 1 and 3), and a large one still gives way to other work between
 * its pieces. The result stays mailparser's own, on real mail.
 */
import { MailParser } from "mailparser";
import { describe, expect, it } from "vitest";
import { type ParsedMessage, parseMessage } from "../../gateway/filters/message";
import { HeadOnlyParser } from "../../gateway/filters/mime-parser";
import { corpusFiles, readCorpusMessage } from "../helpers/corpus";
import { inPieces } from "../helpers/mail-fixtures";

/** The same parser with mailparser's own read loop and end, to compare results with. */
class MailparserLoop extends HeadOnlyParser {
  override readData(): void {
    (MailParser.prototype as unknown as { readData(): void }).readData.call(this);
  }
  override _flush(done: (error?: Error | null) => void): void {
    (MailParser.prototype as unknown as { _flush(d: typeof done): void })._flush.call(this, done);
  }
}

/** A parse result as plain data, to compare whole. */
const plain = (parsed: ParsedMessage) => ({
  ...parsed,
  headers: [...parsed.headers],
  attachments: parsed.attachments.map((a) => ({
    ...a,
    head: a.head.toString("base64"),
    content: a.content?.toString("base64"),
  })),
});

/** Runs `work` while counting the event-loop turns that pass until it settles. */
async function countingTurns<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = () => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    const result = await work();
    return { result, turns };
  } finally {
    done = true;
  }
}

const multipart = Buffer.from(
  [
    'From: "Carl Jensen" <carl@partner.example>',
    "To: anna.berg@northwind.example",
    "Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9?= and figures",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="outer"',
    "",
    "--outer",
    'Content-Type: multipart/alternative; boundary="inner"',
    "",
    "--inner",
    "Content-Type: text/plain; charset=iso-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    ...Array.from(
      { length: 40 },
      (_, i) => `Line ${i}: the figures for K=F6ln are attached, see https://partner.example/q${i}`,
    ),
    "--inner",
    "Content-Type: text/html; charset=utf-8",
    "",
    `<p>See <a href="https://partner.example/report">the report</a></p>`,
    "--inner--",
    "--outer",
    'Content-Type: application/pdf; name="figures.pdf"',
    'Content-Disposition: attachment; filename="figures.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    Buffer.from(`%PDF-1.4\n${"0".repeat(3000)}`)
      .toString("base64")
      .replace(/.{76}/g, "$&\r\n"),
    "--outer--",
    "",
  ].join("\r\n"),
);

describe("the MIME parse and the event loop", () => {
  it("parses a message with parts in a few event-loop turns, whole and right", async () => {
    const { result, turns } = await countingTurns(() => parseMessage(multipart));
    expect(result.subject).toBe("Résumé and figures");
    expect(result.fromName).toBe("Carl Jensen");
    expect(result.text).toContain("Line 39: the figures for Köln are attached");
    expect(result.html).toContain('<a href="https://partner.example/report">');
    expect(result.links.map((l) => l.href)).toContain("https://partner.example/q0");
    expect(result.attachments).toHaveLength(1);
    expect(result.attachments[0]?.head.subarray(0, 8).toString()).toBe("%PDF-1.4");
    expect(result.attachments[0]?.size).toBe(3009);
    // One for the attachment, one before the text is collected; mailparser's own loop took 31.
    expect(turns).toBeLessThanOrEqual(4);

    const textOnly = Buffer.from("From: a@partner.example\r\nSubject: hi\r\n\r\n" + "some text\r\n".repeat(900));
    const simple = await countingTurns(() => parseMessage(textOnly));
    expect(simple.result.text.split("\n").filter((l) => l === "some text")).toHaveLength(900);
    expect(simple.turns).toBeLessThanOrEqual(2);
  });

  it("gives the same result as mailparser's own loop, on real mail, whole and arriving in pieces", async () => {
    const messages = ["spam-2", "easy-ham-2", "hard-ham-1"].flatMap((set) =>
      corpusFiles(set)
        .filter((_, i) => i % 12 === 0)
        .map((file) => readCorpusMessage(set, file)),
    );
    expect(messages.length).toBeGreaterThan(200);
    let withAttachments = 0;
    for (const [i, raw] of messages.entries()) {
      const expected = plain(await parseMessage(raw, new MailparserLoop()));
      expect(plain(await parseMessage(raw))).toEqual(expected);
      expect(plain(await parseMessage(inPieces(raw, 1 + ((i * 977) % 9000))))).toEqual(expected);
      if (expected.attachments.length > 0) withAttachments++;
    }
    expect(withAttachments).toBeGreaterThan(5); // not text alone
  });

  it("gives way to other work between the pieces of a large message", async () => {
    const lines = Array.from({ length: 80_000 }, (_, i) => `line ${i} of a long report with some words in it`);
    const large = Buffer.from(`From: a@partner.example\r\nSubject: report\r\n\r\n${lines.join("\r\n")}\r\n`);
    const { result, turns } = await countingTurns(() => parseMessage(large));
    expect(result.text.startsWith("line 0 of a long report")).toBe(true);
    // 4 MB read in pieces: other sessions get a turn after each piece, not after the message.
    expect(turns).toBeGreaterThan(50);
  });
});
