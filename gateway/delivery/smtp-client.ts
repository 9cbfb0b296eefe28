/**
 * One delivery attempt of one queued message to the smart host, with nodemailer's SMTP
 * connection. STARTTLS is required (the certificate checked against the host name) unless
 * the config says `allow-plain`, in which case STARTTLS is used when offered.
 *
 * Never throws: the outcome is per recipient, classified as delivered, temporary (4xx,
 * network, TLS) or permanent (5xx), with the downstream's reply for the tracker.
 */
import SMTPConnection from "nodemailer/lib/smtp-connection";
import type { Readable } from "node:stream";

export interface SmartHostTarget {
  /** Host name or IP address to connect to. */
  readonly host: string;
  /** The name the certificate must carry when `host` is an address (MX delivery). */
  readonly tlsServername?: string;
  readonly port: number;
  readonly tls: "required" | "allow-plain";
  /** Check the certificate against `host` (false only in lab setups). */
  readonly verifyCertificate: boolean;
  /** Our name in EHLO. */
  readonly heloName: string;
}

export type RecipientOutcome = "delivered" | "temporary" | "permanent";

export interface AttemptResult {
  readonly outcomes: ReadonlyMap<string, { readonly outcome: RecipientOutcome; readonly response: string }>;
}

const CONNECT_TIMEOUT_MS = 30 * 1000;
const GREETING_TIMEOUT_MS = 30 * 1000;
/** Inactivity on an established session (Postfix smtp_data_done_timeout is 600 s). */
const SOCKET_TIMEOUT_MS = 5 * 60 * 1000;

type SmtpError = Error & { responseCode?: number; response?: string; recipient?: string; code?: string };

function describe(error: SmtpError): string {
  const detail = error.code ? ` (${error.code}: ${error.message})` : ` (${error.message})`;
  return error.response ? `${error.response}${error.code === "ETLS" ? detail : ""}` : detail.trim();
}

export async function attemptDelivery(
  target: SmartHostTarget,
  envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] },
  message: () => Readable,
): Promise<AttemptResult> {
  const all = (outcome: RecipientOutcome, response: string) =>
    ({ outcomes: new Map(envelope.rcptTo.map((r) => [r, { outcome, response }])) }) as AttemptResult;

  const connection = new SMTPConnection({
    host: target.host,
    port: target.port,
    name: target.heloName,
    requireTLS: target.tls === "required",
    opportunisticTLS: target.tls === "allow-plain",
    tls: { servername: target.tlsServername ?? target.host, minVersion: "TLSv1.2", rejectUnauthorized: target.verifyCertificate },
    connectionTimeout: CONNECT_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
  });
  const closed = new Promise<void>((resolve) => connection.once("end", () => resolve()));
  // Connection-level failures (refused, TLS required but not offered, timeouts) arrive as
  // 'error' events, not through connect's callback; later ones also fail send().
  let lastError: SmtpError | undefined;
  connection.on("error", (error: SmtpError) => (lastError = error));

  try {
    await new Promise<void>((resolve, reject) => {
      connection.once("error", reject);
      connection.once("end", () => reject(lastError ?? new Error("connection closed before the greeting")));
      connection.connect(() => {
        connection.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    connection.close();
    return all("temporary", describe(error as SmtpError));
  }

  try {
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
      connection.send(
        { from: envelope.mailFrom, to: [...envelope.rcptTo] },
        message(),
        (err, result) => (err ? reject(err) : resolve(result)),
      ),
    );
    const outcomes = new Map<string, { outcome: RecipientOutcome; response: string }>();
    for (const rcpt of info.accepted) outcomes.set(rcpt, { outcome: "delivered", response: info.response });
    for (const error of (info.rejectedErrors ?? []) as SmtpError[]) {
      if (error.recipient) outcomes.set(error.recipient, classify(error));
    }
    for (const rcpt of envelope.rcptTo) {
      if (!outcomes.has(rcpt)) outcomes.set(rcpt, { outcome: "temporary", response: "no reply for this recipient" });
    }
    return { outcomes };
  } catch (error) {
    const smtpError = error as SmtpError & { rejectedErrors?: SmtpError[] };
    if (smtpError.rejectedErrors?.length) {
      const outcomes = new Map(envelope.rcptTo.map((r) => [r, classify(smtpError)]));
      for (const rejected of smtpError.rejectedErrors) {
        if (rejected.recipient) outcomes.set(rejected.recipient, classify(rejected));
      }
      return { outcomes };
    }
    const { outcome, response } = classify(smtpError);
    return all(outcome, response);
  } finally {
    connection.quit();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000).unref())]);
    connection.close();
  }
}

function classify(error: SmtpError): { outcome: RecipientOutcome; response: string } {
  const code = error.responseCode ?? 0;
  return { outcome: code >= 500 && code < 600 ? "permanent" : "temporary", response: describe(error) };
}
