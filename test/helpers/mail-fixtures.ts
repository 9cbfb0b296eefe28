/**
 * Messages for the filter tests, built in code so each shows what it tests: MIME with
 * attachments, zips made with yazl (nested, encrypted, bombs), HTML with links.
 */
import yazl from "yazl";
import { Readable } from "node:stream";
import type { Policy } from "../../gateway/config";
import type { MessageSource } from "../../gateway/filters/source";

/** A policy that keeps every category away from the mailbox: verdicts are easy to see. */
export function quarantineEverything(bannedExtensions: readonly string[]): Policy {
  return {
    spam: "quarantine",
    infomail: "quarantine",
    phishing: "quarantine",
    malware: "quarantine",
    banned: "quarantine",
    impersonation: "quarantine",
    bannedExtensions: [...bannedExtensions],
    maxMessageBytes: 50 * 1024 * 1024,
  };
}

export function zip(entries: Record<string, Buffer | string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const file = new yazl.ZipFile();
    for (const [name, content] of Object.entries(entries))
      file.addBuffer(Buffer.isBuffer(content) ? content : Buffer.from(content), name);
    file.end();
    const chunks: Buffer[] = [];
    file.outputStream.on("data", (c: Buffer) => chunks.push(c));
    file.outputStream.on("end", () => resolve(Buffer.concat(chunks)));
    file.outputStream.on("error", reject);
  });
}

/** Marks every entry encrypted (general purpose flag bit 0), as a password-protected zip has it. */
export function markEncrypted(archive: Buffer): Buffer {
  const out = Buffer.from(archive);
  for (let i = 0; i + 4 <= out.length; i++) {
    const signature = out.readUInt32LE(i);
    if (signature === 0x04034b50) out.writeUInt16LE(out.readUInt16LE(i + 6) | 1, i + 6);
    else if (signature === 0x02014b50) out.writeUInt16LE(out.readUInt16LE(i + 8) | 1, i + 8);
  }
  return out;
}

/** A Windows executable's first bytes: what the true-type check looks for. */
export const EXE_BYTES = Buffer.concat([
  Buffer.from("MZ"),
  Buffer.alloc(62),
  Buffer.from("This program cannot be run in DOS mode"),
]);
export const PDF_BYTES = Buffer.from("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n");

export interface MessageSpec {
  readonly from?: string;
  readonly to?: string;
  readonly subject?: string;
  readonly headers?: Record<string, string>;
  readonly text?: string;
  readonly html?: string;
  readonly attachments?: readonly {
    readonly filename: string;
    readonly content: Buffer;
    readonly contentType?: string;
  }[];
}

export function message(spec: MessageSpec): Buffer {
  const boundary = "==moat-test-boundary==";
  const lines = [
    `From: ${spec.from ?? "Carl Partner <carl@partner.example>"}`,
    `To: ${spec.to ?? "anna.berg@northwind.example"}`,
    `Subject: ${spec.subject ?? "Test"}`,
    "Date: Sun, 22 Nov 2026 10:00:00 +0000",
    `Message-ID: <${Math.random().toString(36).slice(2)}@partner.example>`,
    "MIME-Version: 1.0",
    ...Object.entries(spec.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
  ];
  const parts: string[] = [];
  if (spec.text !== undefined) parts.push(`Content-Type: text/plain; charset=utf-8\r\n\r\n${spec.text}`);
  if (spec.html !== undefined) parts.push(`Content-Type: text/html; charset=utf-8\r\n\r\n${spec.html}`);
  for (const a of spec.attachments ?? [])
    parts.push(
      `Content-Type: ${a.contentType ?? "application/octet-stream"}; name="${a.filename}"\r\nContent-Disposition: attachment; filename="${a.filename}"\r\nContent-Transfer-Encoding: base64\r\n\r\n${a.content.toString("base64").replace(/.{76}/g, "$&\r\n")}`,
    );
  if (parts.length === 0) parts.push("Content-Type: text/plain; charset=utf-8\r\n\r\nHello.");
  const body = `${lines.join("\r\n")}\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n${parts
    .map((p) => `--${boundary}\r\n${p}\r\n`)
    .join("")}--${boundary}--\r\n`;
  return Buffer.from(body, "utf8");
}

/** A message arriving in pieces of `size` bytes, an event-loop turn apart, as from a socket or the spool. */
export function inPieces(raw: Buffer, size: number): MessageSource {
  return {
    open: () =>
      Readable.from(
        (async function* () {
          for (let i = 0; i < raw.length; i += size) {
            await new Promise((resolve) => setImmediate(resolve));
            yield raw.subarray(i, i + size);
          }
        })(),
        { objectMode: false },
      ),
    complete: Promise.resolve(raw.length),
  };
}
