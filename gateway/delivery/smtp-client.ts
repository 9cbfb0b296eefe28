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
import { installDotStuffing } from "./dot-stuffing";

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

type Connected = { readonly connection: SMTPConnection; readonly alive: () => boolean };

/** Opens and greets a connection (STARTTLS per target); a failure is the reply to report. */
async function openConnection(target: SmartHostTarget): Promise<Connected | { failure: string }> {
  installDotStuffing(); // the message's dot-stuffing with a fast path for ordinary lines (dot-stuffing.ts)
  const connection = new SMTPConnection({
    host: target.host,
    port: target.port,
    name: target.heloName,
    requireTLS: target.tls === "required",
    opportunisticTLS: target.tls === "allow-plain",
    tls: {
      servername: target.tlsServername ?? target.host,
      minVersion: "TLSv1.2",
      rejectUnauthorized: target.verifyCertificate,
    },
    connectionTimeout: CONNECT_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    logger: false,
  });
  let open = true;
  connection.once("end", () => (open = false));
  // Connection-level failures (refused, TLS required but not offered, timeouts) arrive as
  // 'error' events, not through connect's callback; later ones also fail send().
  let lastError: SmtpError | undefined;
  connection.on("error", (error: SmtpError) => {
    lastError = error;
    open = false;
  });
  try {
    await new Promise<void>((resolve, reject) => {
      connection.once("error", reject);
      connection.once("end", () => reject(lastError ?? new Error("connection closed before the greeting")));
      connection.connect(() => {
        connection.off("error", reject);
        resolve();
      });
    });
    return { connection, alive: () => open };
  } catch (error) {
    connection.close();
    return { failure: describe(error as SmtpError) };
  }
}

/** One transaction on an open connection; `reusable` when the session is still in a clean state. */
async function sendOn(
  { connection, alive }: Connected,
  envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] },
  message: () => Readable,
): Promise<{ result: AttemptResult; reusable: boolean }> {
  try {
    const info = await new Promise<SMTPConnection.SentMessageInfo>((resolve, reject) =>
      connection.send({ from: envelope.mailFrom, to: [...envelope.rcptTo] }, message(), (err, result) =>
        err ? reject(err) : resolve(result),
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
    return { result: { outcomes }, reusable: alive() };
  } catch (error) {
    const smtpError = error as SmtpError & { rejectedErrors?: SmtpError[] };
    const everyone = classify(smtpError);
    const outcomes = new Map(envelope.rcptTo.map((r) => [r, everyone]));
    for (const rejected of smtpError.rejectedErrors ?? []) {
      if (rejected.recipient) outcomes.set(rejected.recipient, classify(rejected));
    }
    return { result: { outcomes }, reusable: false };
  }
}

async function quit({ connection }: Connected): Promise<void> {
  const ended = new Promise<void>((resolve) => connection.once("end", () => resolve()));
  connection.quit();
  await Promise.race([ended, new Promise((r) => setTimeout(r, 1000).unref())]);
  connection.close();
}

function failedForAll(rcptTo: readonly string[], response: string): AttemptResult {
  return { outcomes: new Map(rcptTo.map((r) => [r, { outcome: "temporary" as const, response }])) };
}

/** One attempt on a connection of its own (MX delivery: every domain is another server). */
export async function attemptDelivery(
  target: SmartHostTarget,
  envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] },
  message: () => Readable,
): Promise<AttemptResult> {
  const opened = await openConnection(target);
  if ("failure" in opened) return failedForAll(envelope.rcptTo, opened.failure);
  try {
    return (await sendOn(opened, envelope, message)).result;
  } finally {
    await quit(opened);
  }
}

/** Messages sent over one connection before it is renewed (as Postfix's smtp_connection_reuse_count_limit). */
const MESSAGES_PER_CONNECTION = 100;
/** An idle connection is closed after this (Exchange Online drops idle sessions after about a minute). */
const IDLE_CLOSE_MS = 20 * 1000;
/**
 * A connection idle longer than this is probed with RSET before it is used again (the server may
 * have dropped it meanwhile). One used more recently is not: its last transaction ended with the
 * reply to its data, and that clears the server's transaction state (RFC 5321 §4.1.1.4), so the
 * next MAIL may follow at once. Under load that saves a round trip a message.
 */
const PROBE_AFTER_IDLE_MS = 1000;

export interface ConnectionPool {
  /** Same contract as attemptDelivery, reusing an idle connection to the target when there is one. */
  attempt: typeof attemptDelivery;
  close(): Promise<void>;
  /** Connections opened so far (for metrics and tests). */
  readonly opened: number;
}

/** Connection reuse to the smart host: after a clean transaction the session is kept for the next one. */
export function createConnectionPool(options: { readonly probeAfterIdleMs?: number } = {}): ConnectionPool {
  const probeAfterIdleMs = options.probeAfterIdleMs ?? PROBE_AFTER_IDLE_MS;
  const idle = new Map<string, { connected: Connected; used: number; parkedAt: number; timer: NodeJS.Timeout }[]>();
  let opened = 0;
  const keyOf = (t: SmartHostTarget) => `${t.host}:${t.port}:${t.tls}:${t.verifyCertificate}:${t.tlsServername ?? ""}`;

  const take = (key: string) => {
    const list = idle.get(key) ?? [];
    while (list.length > 0) {
      const entry = list.pop();
      if (!entry) break;
      clearTimeout(entry.timer);
      if (entry.connected.alive()) return entry;
      entry.connected.connection.close();
    }
    return undefined;
  };

  const park = (key: string, connected: Connected, used: number) => {
    const list = idle.get(key) ?? [];
    const entry = {
      connected,
      used,
      parkedAt: Date.now(),
      timer: setTimeout(() => {
        list.splice(list.indexOf(entry), 1);
        void quit(connected);
      }, IDLE_CLOSE_MS),
    };
    entry.timer.unref();
    list.push(entry);
    idle.set(key, list);
  };

  return {
    get opened() {
      return opened;
    },
    async attempt(target, envelope, message) {
      const key = keyOf(target);
      let reused = take(key);
      if (reused && Date.now() - reused.parkedAt > probeAfterIdleMs) {
        const clean = await new Promise<boolean>((resolve) =>
          reused?.connected.connection.reset((err) => resolve(!err)),
        );
        if (!clean) {
          reused.connected.connection.close();
          reused = undefined;
        }
      }
      let connected = reused?.connected;
      if (!connected) {
        const fresh = await openConnection(target);
        if ("failure" in fresh) return failedForAll(envelope.rcptTo, fresh.failure);
        opened++;
        connected = fresh;
      }
      const used = (reused?.used ?? 0) + 1;
      const { result, reusable } = await sendOn(connected, envelope, message);
      if (reusable && used < MESSAGES_PER_CONNECTION) park(key, connected, used);
      else await quit(connected);
      return result;
    },
    async close() {
      const all = [...idle.values()].flat();
      idle.clear();
      await Promise.all(
        all.map((entry) => {
          clearTimeout(entry.timer);
          return quit(entry.connected);
        }),
      );
    },
  };
}

function classify(error: SmtpError): { outcome: RecipientOutcome; response: string } {
  const code = error.responseCode ?? 0;
  return { outcome: code >= 500 && code < 600 ? "permanent" : "temporary", response: describe(error) };
}
