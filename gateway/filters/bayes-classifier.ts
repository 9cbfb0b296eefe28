/**
 * The statistical part of the Bayes filter: turning a parsed message into tokens, and
 * combining token counts into a spam probability. No storage and no I/O here (bayes-store.ts
 * keeps the counts; bayes.ts is the detector).
 *
 * The method is Gary Robinson's, as SpamBayes uses it: each token's spam probability is
 * smoothed towards 0.5 by how often it was seen (f(w) = (s·x + n·p(w)) / (s + n)), the 150
 * tokens furthest from 0.5 are combined with Fisher's chi-square method, once for spamminess
 * and once for hamminess, and the result is (S − H + 1) / 2: near 1 spam, near 0 ham, near 0.5
 * "unsure" (both or neither). Each token counts once per message.
 *
 * Tokens: words of the subject and of the body (text part, else the HTML without tags),
 * URL hosts and their parent domains, the From address and domain, the display name, a few
 * structural headers (X-Mailer, Content-Type, whether Reply-To differs from From), attachment
 * types. Left out on purpose: Received, Date and Message-ID — they describe where and when mail
 * was collected rather than what it is, and make a model learn its training set's accidents.
 */
import type { ParsedMessage } from "./message";

/** SpamBayes's defaults (Options.py). */
const UNKNOWN_WORD_STRENGTH = 0.45;
const UNKNOWN_WORD_PROB = 0.5;
const MINIMUM_PROB_STRENGTH = 0.1;
const MAX_DISCRIMINATORS = 150;
const BODY_MAX_CHARS = 200_000;

export interface TokenCounts {
  readonly spam: number;
  readonly ham: number;
}

export interface Classification {
  /** 0 (ham) .. 1 (spam). */
  readonly probability: number;
  /** The tokens that weighed most, strongest first, with their probability. */
  readonly clues: readonly { readonly token: string; readonly probability: number }[];
}

function stripHtml(html: string): string {
  return html
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/&nbsp;/gi, " ")
    .replace(/&[a-z]+;|&#\d+;/gi, " ");
}

function hostOf(href: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?([^/?#:]+)/i.exec(href.trim());
  return match?.[1]?.toLowerCase();
}

/** Words (3–12 characters) as tokens; longer ones by first letter and length class. */
function addWords(tokens: Set<string>, text: string, prefix: string): void {
  for (const raw of text.toLowerCase().split(/[\s"'()<>[\]{},;|`]+/)) {
    const word = raw.replace(/^[.:!?*-]+|[.:!?*-]+$/g, "");
    if (word.length < 3) continue;
    if (word.includes("://") || word.startsWith("www.")) {
      const host = hostOf(word.startsWith("www.") ? `http://${word}` : word);
      if (host) tokens.add(`url:${host}`);
      continue;
    }
    if (word.length > 12) {
      tokens.add(`${prefix}skip:${word[0]} ${Math.floor(word.length / 10) * 10}`);
      continue;
    }
    if (/^\d+$/.test(word)) continue; // numbers are dates, prices, ids: noise
    tokens.add(prefix + word);
  }
}

export function tokenize(message: ParsedMessage): Set<string> {
  const tokens = new Set<string>();
  addWords(tokens, message.subject, "subject:");
  const body = (message.text.trim() ? message.text : stripHtml(message.html)).slice(0, BODY_MAX_CHARS);
  addWords(tokens, body, "");
  if (message.html) tokens.add("part:html");
  if (!message.text.trim() && message.html) tokens.add("part:html-only");
  for (const link of message.links) {
    const host = hostOf(link.href);
    if (!host) continue;
    if (/^\d+(\.\d+){3}$/.test(host)) {
      tokens.add("url:ip-literal");
      continue;
    }
    const labels = host.split(".");
    for (let i = 0; i < labels.length - 1; i++) tokens.add(`url:${labels.slice(i).join(".")}`);
  }
  const from = message.fromAddress;
  if (from) {
    tokens.add(`from:${from}`);
    tokens.add(`from-domain:${from.slice(from.lastIndexOf("@") + 1)}`);
  } else tokens.add("from:none");
  for (const word of message.fromName.toLowerCase().split(/\s+/)) if (word) tokens.add(`from-name:${word}`);
  if (!message.fromName) tokens.add("from-name:none");
  if (message.replyTo && message.replyTo !== from) tokens.add("reply-to:differs");
  const mailer = message.headers.get("x-mailer")?.[0] ?? message.headers.get("user-agent")?.[0];
  tokens.add(`x-mailer:${mailer ? mailer.toLowerCase().split(/[\s/(]/)[0] : "none"}`);
  const contentType = message.headers.get("content-type")?.[0]?.toLowerCase();
  tokens.add(`content-type:${contentType ? contentType.split(";")[0]?.trim() : "none"}`);
  const charset = contentType ? /charset="?([\w-]+)/.exec(contentType)?.[1] : undefined;
  if (charset) tokens.add(`charset:${charset}`);
  for (const attachment of message.attachments) {
    tokens.add(`attachment:${attachment.contentType.toLowerCase()}`);
    const extension = attachment.filename?.toLowerCase().match(/\.([a-z0-9]{1,8})$/)?.[1];
    if (extension) tokens.add(`attachment-ext:${extension}`);
  }
  return tokens;
}

/** Chi-square survival function for an even number of degrees of freedom. */
function chi2Q(x2: number, degrees: number): number {
  const m = x2 / 2;
  let term = Math.exp(-m);
  let sum = term;
  for (let i = 1; i < degrees / 2; i++) {
    term *= m / i;
    sum += term;
  }
  return Math.min(sum, 1);
}

/**
 * The spam probability of a message from its tokens' counts. `counts` has an entry for every
 * token ever learned that occurs in the message (absent: never seen).
 */
export function classify(
  tokens: Iterable<string>,
  counts: ReadonlyMap<string, TokenCounts>,
  learned: { readonly spam: number; readonly ham: number },
): Classification {
  const nSpam = Math.max(1, learned.spam);
  const nHam = Math.max(1, learned.ham);
  const clues: { token: string; probability: number; distance: number }[] = [];
  for (const token of tokens) {
    const count = counts.get(token);
    if (!count) continue;
    const spamRatio = count.spam / nSpam;
    const hamRatio = count.ham / nHam;
    const p = spamRatio / (spamRatio + hamRatio);
    const n = count.spam + count.ham;
    const probability = (UNKNOWN_WORD_STRENGTH * UNKNOWN_WORD_PROB + n * p) / (UNKNOWN_WORD_STRENGTH + n);
    const distance = Math.abs(probability - 0.5);
    if (distance >= MINIMUM_PROB_STRENGTH) clues.push({ token, probability, distance });
  }
  clues.sort((a, b) => b.distance - a.distance || (a.token < b.token ? -1 : 1));
  const used = clues.slice(0, MAX_DISCRIMINATORS);
  if (used.length === 0) return { probability: 0.5, clues: [] };
  let lnHam = 0;
  let lnSpam = 0;
  for (const clue of used) {
    lnHam += Math.log(clue.probability);
    lnSpam += Math.log(1 - clue.probability);
  }
  const spamminess = 1 - chi2Q(-2 * lnSpam, 2 * used.length);
  const hamminess = 1 - chi2Q(-2 * lnHam, 2 * used.length);
  return {
    probability: (spamminess - hamminess + 1) / 2,
    clues: used.map(({ token, probability }) => ({ token, probability })),
  };
}
