/**
 * A real SMTP client for tests (nodemailer's SMTP connection): sends one transaction and
 * reports, per recipient, the reply the gateway gave.
 */
import { randomBytes } from "node:crypto";
import SMTPConnection from "nodemailer/lib/smtp-connection";

export interface SendResult {
  readonly accepted: string[];
  /** recipient -> full reply line */
  readonly rejected: Record<string, string>;
  /** the reply to DATA, or the error that ended the transaction */
  readonly response: string;
  readonly responseCode?: number;
}

type SmtpError = Error & { responseCode?: number; response?: string; recipient?: string; rejectedErrors?: SmtpError[] };

/** A test client never waits forever: a dead server ends the transaction with an error. */
const CLIENT_TIMEOUT_MS = 15_000;

export async function sendMail(
  port: number,
  envelope: { from: string; to: string[] },
  message: string,
): Promise<SendResult> {
  const connection = new SMTPConnection({
    host: "127.0.0.1",
    port,
    ignoreTLS: true,
    logger: false,
    name: "client.test",
    connectionTimeout: CLIENT_TIMEOUT_MS,
    greetingTimeout: CLIENT_TIMEOUT_MS,
    socketTimeout: CLIENT_TIMEOUT_MS,
  });
  // Errors and an early end of the connection fail whatever step is waiting.
  const broken = new Promise<never>((_, reject) => {
    connection.on("error", reject);
    connection.on("end", () =>
      reject(Object.assign(new Error("connection closed"), { response: "connection closed" })),
    );
  });
  broken.catch(() => undefined);
  await Promise.race([
    new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve()))),
    broken,
  ]);
  try {
    const info = await Promise.race([
      new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
        connection.send(envelope, message, (err, result) => (err ? reject(err) : resolve(result))),
      ),
      broken,
    ]);
    const rejected: Record<string, string> = {};
    for (const err of (info.rejectedErrors ?? []) as SmtpError[])
      rejected[err.recipient ?? "?"] = err.response ?? err.message;
    return { accepted: info.accepted, rejected, response: info.response };
  } catch (error) {
    const err = error as SmtpError;
    const rejected: Record<string, string> = {};
    for (const r of err.rejectedErrors ?? []) rejected[r.recipient ?? "?"] = r.response ?? r.message;
    return { accepted: [], rejected, response: err.response ?? err.message, responseCode: err.responseCode };
  } finally {
    connection.quit();
  }
}

export function testMessage(subject: string, to = "someone@northwind.example"): string {
  return [
    "From: Sender <sender@outside.example>",
    `To: ${to}`,
    `Subject: ${subject}`,
    "Message-ID: <" + Math.random().toString(36).slice(2) + "@outside.example>",
    "Date: " + new Date().toUTCString(),
    "",
    "Hello from the test.",
    "",
  ].join("\r\n");
}

/** A message of about `bytes` bytes: a base64 attachment-like body in 76-character lines. */
export function largeMessage(bytes: number): string {
  const header =
    "From: a@outside.example\r\nTo: anna.berg@northwind.example\r\nSubject: large\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  const body = randomBytes(Math.ceil((bytes * 3) / 4))
    .toString("base64")
    .replace(/.{76}/g, "$&\r\n");
  return `${header}${body}\r\n`;
}
