/**
 * End-user release requests (Proxmox's quarantine self-service, Mesh's release request):
 *
 * 1. When inbound mail is quarantined, each recipient who is a person (a directory user, never
 *    a group) gets a quarantine notice: who sent what, why it was held, and a link to ask for
 *    its release. The notice goes through the normal delivery path, from the null sender.
 * 2. The link carries a signed, expiring token (HMAC-SHA256 over message id, recipient and
 *    expiry; the key lives in `<dataDir>/release-link.key`, made on first use). Opening it
 *    shows the message summary; only the button (a POST) makes the request, so link scanners
 *    that fetch every URL in a mail request nothing.
 * 3. A request sets the message's status to `Pending`, is recorded, and is mailed to
 *    `releaseRequests.notify`. An admin or the helpdesk approves (the message is released)
 *    or denies (it stays quarantined, status back to `Quarantine`).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log";
import { bufferStream } from "../queue/queue-file";
import type { Spool } from "../queue/spool";
import type { TrackerStore } from "../store/tracker";
import type { Quarantine } from "./quarantine";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ReleaseRequest {
  readonly id: string;
  readonly recipient: string;
  readonly requestedAt: number;
  state: "pending" | "approved" | "denied";
  decidedBy?: string;
}

export interface ReleaseRequests {
  /** Sends notices for a message just quarantined to these people. */
  notify(
    messageId: string,
    people: readonly string[],
    summary: { from: string; subject: string; category: string },
  ): Promise<void>;
  /** The message a token names, if the token is genuine and unexpired. */
  verify(token: string): { id: string; recipient: string } | undefined;
  request(token: string): Promise<ReleaseRequest | undefined>;
  decide(id: string, approve: boolean, actor: string): Promise<ReleaseRequest | undefined>;
  list(): readonly ReleaseRequest[];
  link(id: string, recipient: string): string;
}

function loadKey(dataDir: string): Buffer {
  const path = join(dataDir, "release-link.key");
  if (existsSync(path)) return Buffer.from(readFileSync(path, "utf8").trim(), "base64");
  const key = randomBytes(32);
  writeFileSync(path, key.toString("base64"), { mode: 0o600, flag: "wx" });
  return key;
}

const headerSafe = (text: string) => text.replace(/[\r\n]+/g, " ").slice(0, 200);

export function createReleaseRequests(options: {
  readonly spool: Spool;
  readonly tracker: TrackerStore;
  readonly quarantine: Quarantine;
  readonly dataDir: string;
  readonly hostname: string;
  readonly linkBaseUrl: string;
  readonly linkValidDays: number;
  readonly notifyAddresses: readonly string[];
  readonly localDomains: readonly string[];
  /** Hands a queued notice to delivery. */
  readonly onQueued: (id: string) => void;
  readonly log: Logger;
  readonly now?: () => number;
}): ReleaseRequests {
  const now = options.now ?? Date.now;
  const key = loadKey(options.dataDir);
  // Requests survive a restart: a small JSON file beside the tracker, rewritten atomically.
  const requestsFile = join(options.dataDir, "release-requests.json");
  const requests = new Map<string, ReleaseRequest>(
    existsSync(requestsFile)
      ? (JSON.parse(readFileSync(requestsFile, "utf8")) as ReleaseRequest[]).map((r) => [r.id, r])
      : [],
  );
  const save = () => {
    writeFileSync(`${requestsFile}.tmp`, JSON.stringify([...requests.values()]), { mode: 0o600 });
    renameSync(`${requestsFile}.tmp`, requestsFile);
  };
  const sign = (payload: string) => createHmac("sha256", key).update(payload).digest("base64url");
  const local = new Set(options.localDomains.map((d) => d.toLowerCase()));

  async function send(to: readonly string[], subject: string, text: string): Promise<void> {
    const body = [
      `From: Moat quarantine <postmaster@${options.hostname}>`,
      `To: ${to.join(", ")}`,
      `Subject: ${headerSafe(subject)}`,
      `Date: ${new Date(now()).toUTCString()}`,
      `Message-ID: <${randomBytes(12).toString("hex")}@${options.hostname}>`,
      "Auto-Submitted: auto-generated",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
      "Content-Transfer-Encoding: 8bit",
      "",
      text.replace(/\r?\n/g, "\r\n"),
      "",
    ].join("\r\n");
    const outbound = to.filter((a) => !local.has(a.slice(a.lastIndexOf("@") + 1).toLowerCase()));
    const { id } = await options.spool.accept(
      {
        mailFrom: "",
        rcptTo: [...to],
        ...(outbound.length ? { outboundRcpts: outbound } : {}),
        receivedAt: new Date(now()).toISOString(),
        client: { ip: "127.0.0.1", helo: options.hostname, tls: false },
      },
      Buffer.alloc(0),
      bufferStream(Buffer.from(body, "utf8")),
      () => false,
    );
    options.onQueued(id);
  }

  const api: ReleaseRequests = {
    link(id, recipient) {
      const payload = Buffer.from(`${id}|${recipient}|${now() + options.linkValidDays * DAY_MS}`).toString("base64url");
      return `${options.linkBaseUrl.replace(/\/+$/, "")}/release/${payload}.${sign(payload)}`;
    },
    verify(token) {
      const [payload, signature] = token.split(".");
      if (!payload || !signature) return undefined;
      const expected = Buffer.from(sign(payload));
      const presented = Buffer.from(signature);
      if (expected.length !== presented.length || !timingSafeEqual(expected, presented)) return undefined;
      const [id, recipient, expires] = Buffer.from(payload, "base64url").toString().split("|");
      if (!id || !recipient || !(Number(expires) > now())) return undefined;
      return { id, recipient };
    },
    async notify(messageId, people, summary) {
      for (const person of people) {
        await send(
          [person],
          `Message held for you: ${summary.subject || "(no subject)"}`,
          [
            "A message to you was held in quarantine and has not been delivered.",
            "",
            `From:     ${summary.from || "<>"}`,
            `Subject:  ${summary.subject || "(no subject)"}`,
            `Held as:  ${summary.category}`,
            "",
            "If you know the sender and expect this message, ask for its release (your IT helpdesk decides):",
            api.link(messageId, person),
            "",
            `The link works for ${options.linkValidDays} days. Do not forward it.`,
          ].join("\n"),
        );
      }
    },
    async request(token) {
      const target = api.verify(token);
      if (!target) return undefined;
      const existing = requests.get(target.id);
      if (existing?.state === "pending") return existing;
      const request: ReleaseRequest = {
        id: target.id,
        recipient: target.recipient,
        requestedAt: now(),
        state: "pending",
      };
      requests.set(target.id, request);
      save();
      await options.tracker.setStatus(target.id, "Pending", now());
      await options.tracker.audit({
        at: now(),
        actor: target.recipient,
        action: "release-request",
        messageId: target.id,
        detail: "requested by the recipient",
      });
      const story = await options.tracker.story(target.id);
      if (options.notifyAddresses.length > 0)
        await send(
          options.notifyAddresses,
          `Release request: ${story?.subject ?? target.id}`,
          [
            `${target.recipient} asks for the release of a quarantined message.`,
            "",
            `From:     ${story?.mailFrom || "<>"}`,
            `Subject:  ${story?.subject ?? ""}`,
            `Held as:  ${story?.category ?? "?"}`,
            "",
            `Approve or deny it in the tracker: ${options.linkBaseUrl.replace(/\/+$/, "")}/messages/${target.id}`,
          ].join("\n"),
        );
      options.log.info("release requested", { id: target.id, recipient: target.recipient });
      return request;
    },
    async decide(id, approve, actor) {
      const request = requests.get(id);
      if (!request || request.state !== "pending") return undefined;
      if (approve) await options.quarantine.release(id, actor);
      else {
        await options.tracker.setStatus(id, "Quarantine", now());
        await options.tracker.audit({
          at: now(),
          actor,
          action: "deny-release",
          messageId: id,
          detail: `request by ${request.recipient} denied`,
        });
      }
      request.state = approve ? "approved" : "denied";
      request.decidedBy = actor;
      save();
      return request;
    },
    list: () => [...requests.values()],
  };
  return api;
}
