/**
 * The MIME parse reads an attachment only as far as the detectors look: the head exactly, the
 * size exactly (counted, not decoded), and archives and HTML whole — whatever the line length,
 * line ending, padding or chunking of the base64.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseMessage } from "../../gateway/filters/message";
import { inPieces, zip } from "../helpers/mail-fixtures";

function withAttachment(
  content: Buffer,
  options: { filename: string; lineLength: number; eol: string; firstLine?: number; text?: string },
): Buffer {
  const { filename, lineLength, eol, firstLine = 0, text = "see attached" } = options;
  const base64 = content.toString("base64");
  const encoded =
    (firstLine > 0 ? `${base64.slice(0, firstLine)}${eol}` : "") +
    base64.slice(firstLine).replace(new RegExp(`.{${lineLength}}`, "g"), `$&${eol}`);
  return Buffer.from(
    [
      "From: Carl <carl@partner.example>",
      "To: anna.berg@northwind.example",
      "Subject: attached",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain",
      "",
      text,
      "--b1",
      `Content-Type: application/octet-stream; name="${filename}"`,
      `Content-Disposition: attachment; filename="${filename}"`,
      "Content-Transfer-Encoding: base64",
      "",
      `${encoded}`,
      "--b1--",
      "",
    ].join(eol),
    "latin1",
  );
}

describe("attachments in the MIME parse", () => {
  it("keeps the first 40 KB exactly and counts the size of the rest without keeping it", async () => {
    for (const [size, lineLength, eol] of [
      [3_000_001, 76, "\r\n"],
      [2_500_000, 64, "\n"],
      [1_000_002, 1000, "\r\n"],
    ] as const) {
      const content = randomBytes(size);
      const parsed = await parseMessage(
        inPieces(withAttachment(content, { filename: "scan.pdf", lineLength, eol }), 7_777),
      );
      expect(parsed.text.trim()).toBe("see attached");
      expect(parsed.attachments).toHaveLength(1);
      const [attachment] = parsed.attachments;
      expect(attachment?.size).toBe(size);
      expect(attachment?.head.equals(content.subarray(0, 40 * 1024))).toBe(true);
      expect(attachment?.content).toBeUndefined();
    }
  });

  it("keeps an archive and an HTML attachment whole, because detectors open them", async () => {
    const archive = await zip({ "noise.bin": randomBytes(300_000), "a.txt": "hello" });
    const parsedZip = await parseMessage(
      withAttachment(archive, { filename: "docs.zip", lineLength: 76, eol: "\r\n" }),
    );
    expect(parsedZip.attachments[0]?.size).toBe(archive.length);
    expect(parsedZip.attachments[0]?.content?.equals(archive)).toBe(true);

    // The parser reads in 64 KB blocks: placed so that a block ends after the attachment's
    // first 4 characters (3 bytes), the archive's magic number comes in two pieces.
    const small = await zip({ "noise.bin": randomBytes(60_000) });
    const options = { filename: "data.bin", lineLength: 76, eol: "\r\n", firstLine: 4 };
    const probe = withAttachment(small, { ...options, text: "" });
    const firstLine = `${small.toString("base64").slice(0, 4)}\r\n`;
    const filler = 64 * 1024 - (probe.indexOf(firstLine, probe.indexOf("base64")) + firstLine.length);
    const text = Array.from({ length: Math.ceil(filler / 70) }, () => "a".repeat(68)).join("\r\n");
    const placed = withAttachment(small, { ...options, text: text.slice(0, filler) });
    expect(placed.subarray(64 * 1024 - firstLine.length, 64 * 1024).toString()).toBe(firstLine);
    const parsedSmall = await parseMessage(inPieces(placed, 4096));
    expect(parsedSmall.attachments[0]?.content?.equals(small)).toBe(true);

    const html = Buffer.from(
      `<html><body>${"<p>filler</p>".repeat(10_000)}<form action="https://x.example/"></form></body></html>`,
    );
    const parsedHtml = await parseMessage(
      withAttachment(html, { filename: "invoice.html", lineLength: 76, eol: "\r\n" }),
    );
    expect(parsedHtml.attachments[0]?.content?.equals(html)).toBe(true);
  });
});
