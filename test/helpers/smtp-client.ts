/**
 * A real SMTP client for tests (nodemailer's SMTP connection): sends one transaction and
 * reports, per recipient, the reply the gateway gave.
 */
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

export async function sendMail(port: number, envelope: { from: string; to: string[] }, message: string): Promise<SendResult> {
  const connection = new SMTPConnection({ host: "127.0.0.1", port, ignoreTLS: true, logger: false, name: "client.test" });
  connection.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => connection.connect((err) => (err ? reject(err) : resolve())));
  try {
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
      connection.send(envelope, message, (err, result) => (err ? reject(err) : resolve(result))),
    );
    const rejected: Record<string, string> = {};
    for (const err of (info.rejectedErrors ?? []) as SmtpError[]) rejected[err.recipient ?? "?"] = err.response ?? err.message;
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
