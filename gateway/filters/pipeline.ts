/**
 * The verdict: runs the detectors on one message, applies the rules and the policy, and
 * explains the decision. The only place that turns findings into an action.
 *
 * 1. Rules that need no scanning decide first (rules.ts precedence): a custom rule delivers,
 *    a block rule rejects or deletes. The detectors are not run for them.
 * 2. Every detector runs (concurrently). Their findings are the reasons. Streaming detectors
 *    (authentication) start with the MIME parse, while the message is still arriving; the
 *    others start once it has been parsed.
 * 3. The spam score is the sum of the detectors' parts (rspamd's score, Bayes's contribution);
 *    at or above `spamThreshold` the message is spam, with the parts named.
 * 4. An allow rule matching the sender removes spam, infomail and impersonation — but only
 *    when authentication vouches for the sender (auth.ts `senderAuthenticated`); otherwise the
 *    rule is named in the reasons as not applied.
 * 5. The category is the most severe found: malware, phishing, banned, impersonation, spam,
 *    infomail; none -> clean. The action is the policy's for that category (clean: deliver).
 * 6. A detector that could not run (engine down) never lets a message through as clean: when
 *    the verdict would be `deliver`, the engine-failure policy applies instead — `tempfail`
 *    (451 in the session: the sender retries) or `hold` (accepted and held for an admin).
 *    A verdict that already quarantines, deletes or rejects stands.
 */
import type { PolicyAction, Policy, VerdictCategory } from "../config";
import { type Rule, type RuleMatcher } from "../rules/rules";
import { MessageParseError, type ParsedMessage, parseMessage } from "./message";
import {
  type ArrivingContext,
  EngineUnavailableError,
  type Filter,
  type Finding,
  type MessageContext,
  type PeopleDirectory,
} from "./types";

/** Most severe first. */
export const SEVERITY: readonly VerdictCategory[] = [
  "malware",
  "phishing",
  "banned",
  "impersonation",
  "spam",
  "infomail",
];
const ALLOW_BYPASSES: ReadonlySet<VerdictCategory> = new Set(["spam", "infomail", "impersonation"]);

export const DEFAULT_SPAM_THRESHOLD = 6;

export type EngineFailurePolicy = "tempfail" | "hold";

export interface Verdict {
  readonly category: VerdictCategory | "clean";
  /** `tempfail` and `hold` only when an engine failed (see 6.). */
  readonly action: PolicyAction | "tempfail" | "hold";
  readonly reasons: readonly Finding[];
  /** The rule that decided, if one did. */
  readonly rule?: Rule;
  /** Header lines to add on delivery. */
  readonly headers: readonly string[];
  /** Engines that failed for this message. */
  readonly engineFailures: readonly string[];
}

export interface Scanner {
  scan(
    input: Omit<MessageContext, "parsed" | "domains" | "directory"> & { readonly directory?: PeopleDirectory },
  ): Promise<Verdict>;
}

const EMPTY_MESSAGE: ParsedMessage = {
  subject: "",
  fromAddress: "",
  fromName: "",
  replyTo: "",
  headers: new Map(),
  text: "",
  html: "",
  links: [],
  attachments: [],
};

export function createScanner(options: {
  readonly filters: readonly Filter[];
  readonly rules: RuleMatcher;
  readonly policy: Policy;
  readonly domains: readonly string[];
  readonly onEngineFailure: EngineFailurePolicy;
  /** The spam score at which a message is spam (rspamd's "add header" default). */
  readonly spamThreshold?: number;
}): Scanner {
  const spamThreshold = options.spamThreshold ?? DEFAULT_SPAM_THRESHOLD;
  const domains = new Set(options.domains.map((d) => d.toLowerCase()));
  const ruleReason = (rule: Rule, detail: string): Finding => ({
    detector: "rules",
    symbol: `${rule.kind.toUpperCase()}_RULE`,
    detail: `${detail} (${rule.scope} rule, ${rule.file} line ${rule.line}${rule.comment ? `: ${rule.comment}` : ""})`,
  });
  return {
    async scan(input) {
      const matched = options.rules.match({ mailFrom: input.mailFrom, clientIp: input.clientIp });
      if (matched.custom)
        return {
          category: "clean",
          action: "deliver",
          reasons: [ruleReason(matched.custom, "custom rule: every check bypassed")],
          rule: matched.custom,
          headers: [],
          engineFailures: [],
        };
      if (matched.block) {
        const action = matched.block.action ?? "reject";
        return {
          category: "clean",
          action,
          reasons: [ruleReason(matched.block, `blocked by rule (${action})`)],
          rule: matched.block,
          headers: [],
          engineFailures: [],
        };
      }

      const findings: Finding[] = [];
      const arriving: ArrivingContext = { ...input, domains };
      const streaming = options.filters.map((filter) => (filter.streaming ? filter.run(arriving) : undefined));
      for (const run of streaming) run?.catch(() => undefined); // settled below, after the parse
      let parsed = EMPTY_MESSAGE;
      try {
        parsed = await parseMessage(input.source);
      } catch (error) {
        if (!(error instanceof MessageParseError)) throw error;
        findings.push({ detector: "mime", category: "banned", symbol: "MIME_UNPARSEABLE", detail: error.message });
      }
      const context: MessageContext = { ...arriving, parsed };
      const results = await Promise.allSettled(
        options.filters.map((filter, index) => (filter.streaming ? streaming[index]! : filter.run(context))),
      );
      const headers: string[] = [];
      const engineFailures: string[] = [];
      const facts: Record<string, string | number | boolean> = {};
      const spamParts: string[] = [];
      let spamScore = 0;
      results.forEach((result, index) => {
        const name = options.filters[index]?.name ?? "?";
        if (result.status === "fulfilled") {
          findings.push(...result.value.findings);
          headers.push(...(result.value.headers ?? []));
          Object.assign(facts, result.value.facts ?? {});
          if (result.value.spamScore !== undefined) {
            spamScore += result.value.spamScore;
            spamParts.push(`${name} ${result.value.spamScore > 0 ? "+" : ""}${result.value.spamScore}`);
          }
          return;
        }
        const error = result.reason as Error;
        const message = error instanceof EngineUnavailableError ? error.message : `${name}: ${error.message}`;
        engineFailures.push(message);
        findings.push({ detector: name, symbol: "ENGINE_FAILED", detail: message });
      });

      if (spamParts.length > 0 && spamScore >= spamThreshold) {
        const total = Math.round(spamScore * 100) / 100;
        findings.push({
          detector: "spam-score",
          category: "spam",
          score: total,
          symbol: "SPAM_SCORE",
          detail: `spam score ${total} reaches the threshold of ${spamThreshold} (${spamParts.join(", ")})`,
        });
      }

      let rule: Rule | undefined;
      let bypassed: ReadonlySet<VerdictCategory> = new Set();
      if (matched.allow) {
        if (facts.senderAuthenticated === true) {
          rule = matched.allow;
          bypassed = ALLOW_BYPASSES;
          findings.push(ruleReason(matched.allow, "allowed sender: spam, infomail and impersonation bypassed"));
        } else {
          findings.push(
            ruleReason(matched.allow, "allow rule NOT applied: the sender is not authenticated (SPF/DKIM/DMARC)"),
          );
        }
      }
      const found = new Set(findings.map((f) => f.category).filter((c): c is VerdictCategory => c !== undefined));
      const category = SEVERITY.find((c) => found.has(c) && !bypassed.has(c)) ?? "clean";
      let action: Verdict["action"] = category === "clean" ? "deliver" : options.policy[category];
      if (engineFailures.length > 0 && action === "deliver") action = options.onEngineFailure;
      return {
        category,
        action,
        reasons: findings,
        ...(rule ? { rule } : {}),
        headers,
        engineFailures,
      };
    },
  };
}
