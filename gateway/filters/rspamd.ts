/**
 * Spam scoring by rspamd over its HTTP API (`POST /checkv2`, MOAT_RSPAMD_URL). The real
 * envelope goes with the message (IP, Helo, From, Rcpt headers, and Hostname: the client's
 * forward-confirmed name when it has one), so rspamd does not guess the client from Received
 * headers (shared/notes/rspamd-and-spamassassin-offline.md).
 *
 * rspamd's score is its part of the spam score (pipeline.ts adds Bayes's and compares the sum
 * with `filters.spamThreshold`, by default 6 like rspamd's own "add header"); the symbols that
 * added to it are the reasons. rspamd's `reject` action (score 15 and up, or a forced action
 * such as GTUBE's) is spam on its own, whatever else says. An unreachable, failing or slow
 * rspamd throws EngineUnavailableError: the pipeline applies the engine-failure policy. The
 * message streams to rspamd from the spool (chunked), so a large one is never held whole.
 */
import { Readable } from "node:stream";
import type { ReadableStream } from "node:stream/web";
import type { Filter, Finding } from "./types";
import { EngineUnavailableError } from "./types";

const RSPAMD_TIMEOUT_MS = 30_000;
/** Symbols listed as reasons: the heaviest few. */
const MAX_SYMBOLS = 8;

interface RspamdReply {
  is_skipped?: boolean;
  messages?: Record<string, string>;
  score?: number;
  required_score?: number;
  action?: string;
  symbols?: Record<string, { name?: string; score?: number; description?: string }>;
}

export function createRspamdFilter(options: { readonly url: string }): Filter {
  const endpoint = `${options.url.replace(/\/+$/, "")}/checkv2`;
  return {
    name: "rspamd",
    async run(message) {
      const headers: Record<string, string> = {
        IP: message.clientIp,
        Helo: message.helo || message.clientIp,
        From: message.mailFrom,
        "Content-Type": "message/rfc822",
      };
      // The client's confirmed name; none for an unknown client, which rspamd then looks up
      // itself (RDNS_NONE, HFILTER_HOSTNAME_UNKNOWN). Never our own name: that would vouch for it.
      if (message.clientName) headers.Hostname = message.clientName;
      // fetch joins repeated headers; rspamd takes a comma-separated Rcpt as one value, so
      // one request header per recipient is not possible here: send the first, rspamd needs
      // one for its per-recipient settings only.
      if (message.rcptTo[0]) headers.Rcpt = message.rcptTo[0];
      let reply: RspamdReply;
      try {
        const response = await fetch(endpoint, {
          method: "POST",
          headers,
          body: Readable.toWeb(message.source.open()) as ReadableStream,
          duplex: "half",
          signal: AbortSignal.timeout(RSPAMD_TIMEOUT_MS),
        });
        if (!response.ok) throw new Error(`HTTP ${response.status} ${(await response.text()).slice(0, 200)}`);
        reply = (await response.json()) as RspamdReply;
      } catch (error) {
        throw new EngineUnavailableError("rspamd", `${endpoint}: ${(error as Error).message}`);
      }
      const score = Math.round((reply.score ?? 0) * 100) / 100;
      const action = reply.action ?? "no action";
      const symbols = Object.values(reply.symbols ?? {})
        .filter((s) => (s.score ?? 0) > 0)
        .sort((a, b) => (b.score ?? 0) - (a.score ?? 0))
        .slice(0, MAX_SYMBOLS)
        .map((s) => `${s.name}(${(s.score ?? 0).toFixed(2)})`);
      // A forced action (GTUBE, a settings rule) comes with its reason as the SMTP message, no symbols.
      const forced = reply.messages?.smtp_message;
      if (forced && symbols.length === 0) symbols.push(forced);
      const spam = action === "reject";
      const finding: Finding = {
        detector: "rspamd",
        ...(spam ? { category: "spam" as const } : {}),
        score,
        symbol: action.toUpperCase().replace(/ /g, "_"),
        detail: `rspamd score ${score} of ${reply.required_score ?? "?"} (${action})${symbols.length ? `: ${symbols.join(" ")}` : ""}`,
      };
      return { findings: [finding], spamScore: score };
    },
  };
}
