/**
 * The Node load client's fixed mix of messages, about SIZE bytes each, in four shapes that take
 * the verdict different ways, sent in rotation:
 *
 *   text        a plain-text letter
 *   html        multipart/alternative, text and HTML with links (link checks, both bodies decoded)
 *   attachment  multipart/mixed, a short text and a base64 PDF (true type, attachment checks)
 *   signed      the plain-text letter with a DKIM signature (mailauth hashes the body; the key is
 *               not in the benchmark's DNS, so the result is not a pass, but the work is done)
 *
 * Every system gets the same bytes; a relay without a verdict only moves them.
 */
import { generateKeyPairSync } from "node:crypto";
import { dkimSign } from "mailauth";

const LINE = "The quarterly figures are attached as discussed; call me if anything is unclear.";

function headers(to: string, n: number, subject: string, extra: string[]): string {
  return [
    "From: Bench Sender <bench@outside.example>",
    `To: <${to}>`,
    `Subject: ${subject} ${n}`,
    `Message-ID: <mix-${n}-${Date.now()}@outside.example>`,
    "Date: Mon, 23 Nov 2026 10:00:00 +0000",
    "MIME-Version: 1.0",
    ...extra,
  ].join("\r\n");
}

/** `count` text lines of about 80 characters. */
const lines = (count: number, n: number) =>
  Array.from({ length: Math.max(1, count) }, (_, i) => `${LINE} (${n}.${i})`).join("\r\n");

function text(size: number, to: string, n: number): string {
  const head = headers(to, n, "Quarterly figures", ["Content-Type: text/plain; charset=utf-8"]);
  return `${head}\r\n\r\n${lines(Math.round((size - head.length) / 86), n)}\r\n`;
}

function html(size: number, to: string, n: number): string {
  const boundary = `alt-${n}`;
  const head = headers(to, n, "Newsletter", [`Content-Type: multipart/alternative; boundary="${boundary}"`]);
  const count = Math.round((size - head.length) / 2 / 120);
  const plain = lines(count, n);
  const rich = Array.from(
    { length: count },
    (_, i) => `<p>${LINE} <a href="https://www.outside.example/news/${n}/${i}">Read more</a></p>`,
  ).join("\r\n");
  return `${head}\r\n\r\n--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${plain}\r\n--${boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n${rich}\r\n</body></html>\r\n--${boundary}--\r\n`;
}

function attachment(size: number, to: string, n: number): string {
  const boundary = `mixed-${n}`;
  const head = headers(to, n, "Invoice", [`Content-Type: multipart/mixed; boundary="${boundary}"`]);
  const pdf = Buffer.concat([
    Buffer.from("%PDF-1.7\n"),
    Buffer.alloc(Math.max(64, Math.round(((size - head.length - 600) * 3) / 4)), `stream ${n} `),
    Buffer.from("\n%%EOF\n"),
  ]);
  const encoded = pdf.toString("base64").replace(/.{76}/g, "$&\r\n");
  return `${head}\r\n\r\n--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${lines(3, n)}\r\n--${boundary}\r\nContent-Type: application/pdf; name="invoice-${n}.pdf"\r\nContent-Disposition: attachment; filename="invoice-${n}.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n${encoded}\r\n--${boundary}--\r\n`;
}

async function signed(size: number, to: string, n: number, privateKey: string): Promise<string> {
  const message = text(size - 700, to, n);
  const { signatures } = (await dkimSign(message, {
    signatureData: [{ signingDomain: "outside.example", selector: "bench", privateKey }],
  } as never)) as { signatures: string };
  return `${signatures}${message}`;
}

/** The mix, each message dot-stuffed and ended with `.` for DATA: 16 messages, four of each shape. */
export async function messageMix(size: number, to: string): Promise<Buffer[]> {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const messages: string[] = [];
  for (let n = 0; n < 16; n++) {
    const shape = n % 4;
    messages.push(
      shape === 0
        ? text(size, to, n)
        : shape === 1
          ? html(size, to, n)
          : shape === 2
            ? attachment(size, to, n)
            : await signed(size, to, n, key),
    );
  }
  return messages.map((m) => Buffer.from(`${m.replace(/\r\n\./g, "\r\n..")}.\r\n`, "utf8"));
}
