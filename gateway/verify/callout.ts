/**
 * `dynamic` recipient verification: ask the smart host (Exchange Online) whether it would
 * take the recipient, with an SMTP callout (smtp-probe.ts), and remember the answer —
 * positive and negative results with their own lifetimes, so a new mailbox is not refused
 * for long and a dictionary attack does not turn into a callout per guess.
 *
 * - 2xx -> accept (cached); 5xx -> unknown (cached); 4xx, timeout, connection or TLS failure
 *   -> tempfail (451, never 550, never cached).
 * - Concurrent RCPTs for the same address share one callout.
 * - An accepted address is reported as a user: a callout cannot tell a group from a person.
 * - Catch-all: with the first callout to a domain, a random address of that domain is asked
 *   too; if the downstream accepts it, verification cannot tell anyone apart there, which is
 *   logged (once per detection) so the admin can switch to static verification.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../log";
import { type RecipientVerdict, type RecipientVerifier, domainOf } from "./recipients";
import { type ProbeResult, type ProbeTarget, probeRecipients } from "./smtp-probe";

export interface CalloutOptions {
  readonly domains: readonly string[];
  readonly target: ProbeTarget;
  readonly positiveTtlMs: number;
  readonly negativeTtlMs: number;
  readonly timeoutMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  /** Injected in tests that count probes; defaults to a real SMTP callout. */
  readonly probe?: typeof probeRecipients;
}

interface CacheEntry {
  readonly accepted: boolean;
  readonly expiresAt: number;
}

/** Entries kept at most; the oldest go first (a burst of guesses must not grow memory). */
const CACHE_MAX_ENTRIES = 100_000;

export function createCalloutVerifier(
  options: CalloutOptions,
): RecipientVerifier & { readonly catchAllDomains: ReadonlySet<string> } {
  const domains = new Set(options.domains.map((d) => d.toLowerCase()));
  const now = options.now ?? Date.now;
  const probe = options.probe ?? probeRecipients;
  const cache = new Map<string, CacheEntry>();
  const inFlight = new Map<string, Promise<RecipientVerdict>>();
  const checkedDomains = new Map<string, number>();
  const catchAllDomains = new Set<string>();

  const remember = (address: string, accepted: boolean) => {
    if (cache.size >= CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
    cache.set(address, { accepted, expiresAt: now() + (accepted ? options.positiveTtlMs : options.negativeTtlMs) });
  };

  const callout = async (address: string, key: string, domain: string): Promise<RecipientVerdict> => {
    const checkCatchAll = (checkedDomains.get(domain) ?? 0) <= now();
    const canary = `moat-verify-${randomBytes(6).toString("hex")}@${domain}`;
    const result: ProbeResult = await probe(
      options.target,
      checkCatchAll ? [address, canary] : [address],
      options.timeoutMs,
    );
    if (result.kind === "failure") {
      options.log.warn("recipient callout failed; answered 451", { to: address, reason: result.reason });
      return { kind: "tempfail", address, reason: result.reason };
    }
    const reply = result.replies.get(address);
    if (checkCatchAll) {
      checkedDomains.set(domain, now() + options.positiveTtlMs);
      const canaryReply = result.replies.get(canary);
      if (canaryReply && canaryReply.code < 300) {
        if (!catchAllDomains.has(domain)) {
          options.log.warn(
            "the smart host accepts any address of this domain (catch-all): dynamic verification cannot refuse unknown recipients there; use static verification",
            { domain },
          );
        }
        catchAllDomains.add(domain);
      } else {
        catchAllDomains.delete(domain);
      }
    }
    if (!reply || (reply.code >= 400 && reply.code < 500)) {
      return { kind: "tempfail", address, reason: reply ? `${reply.code} ${reply.text}` : "no reply" };
    }
    const accepted = reply.code < 300;
    remember(key, accepted);
    return accepted
      ? { kind: "accept", address, mailbox: { primary: key, displayName: "", kind: "user" } }
      : { kind: "unknown", address };
  };

  return {
    catchAllDomains,
    async verify(address) {
      const domain = domainOf(address);
      if (!domains.has(domain)) return { kind: "relay-denied", address };
      const key = address.toLowerCase();
      const cached = cache.get(key);
      if (cached && cached.expiresAt > now()) {
        return cached.accepted
          ? { kind: "accept", address, mailbox: { primary: key, displayName: "", kind: "user" } }
          : { kind: "unknown", address };
      }
      const pending = inFlight.get(key);
      if (pending) return pending;
      const run = callout(address, key, domain).finally(() => inFlight.delete(key));
      inFlight.set(key, run);
      return run;
    },
  };
}
