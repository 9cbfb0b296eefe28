/**
 * Lookalike domains: a domain that is not one of ours but reads like one — confusable
 * characters (Cyrillic `а` for Latin `a`, `0` for `o`, `rn` for `m`), punycode that decodes to
 * such characters, one or two typing slips (Damerau-Levenshtein distance), or ours used as a
 * subdomain of someone else's (`northwind.example.evil.test`).
 */
import { domainToUnicode } from "node:url";

const CONFUSABLES: Record<string, string> = {
  а: "a",
  е: "e",
  о: "o",
  р: "p",
  с: "c",
  у: "y",
  х: "x",
  і: "i",
  ј: "j",
  ѕ: "s",
  ԁ: "d",
  ɡ: "g",
  ո: "n",
  ս: "u",
  ο: "o",
  α: "a",
  ν: "v",
  ρ: "p",
  ι: "i",
  κ: "k",
  τ: "t",
  ε: "e",
  ӏ: "l",
  ɩ: "i",
  "0": "o",
  "1": "l",
  "|": "l",
  í: "i",
  ì: "i",
  ï: "i",
  é: "e",
  è: "e",
  ë: "e",
  á: "a",
  à: "a",
  ä: "a",
  ó: "o",
  ò: "o",
  ö: "o",
  ú: "u",
  ü: "u",
};

/** A reading of the domain in which confusable spellings coincide. */
export function skeleton(domain: string): string {
  const unicode = domainToUnicode(domain.toLowerCase()) || domain.toLowerCase();
  let out = "";
  for (const char of unicode) out += CONFUSABLES[char] ?? char;
  return out.replace(/rn/g, "m").replace(/vv/g, "w").replace(/i/g, "l");
}

/** Edits (insert, delete, substitute, swap neighbours) between two strings, up to `max` + 1. */
export function editDistance(a: string, b: string, max = 3): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push([i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) (rows[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    const prev = rows[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        value = Math.min(value, (rows[i - 2]?.[j - 2] as number) + 1);
      row[j] = value;
    }
  }
  return rows[a.length]?.[b.length] as number;
}

/** Allowed slips for a domain of this length: none below 5 characters (too many real neighbours). */
function slipsAllowed(length: number): number {
  return length >= 10 ? 2 : length >= 5 ? 1 : 0;
}

/**
 * Answers already given, per set of customer domains (a scanner keeps one set), by candidate:
 * mail comes from the same domains again and again, and an answer costs tens of µs.
 */
const answers = new WeakMap<ReadonlySet<string>, Map<string, string | undefined>>();
const ANSWERS_MAX = 10_000;

/** The customer domain `candidate` imitates, or undefined (also when it is one of them). */
export function lookalikeOf(candidate: string, domains: ReadonlySet<string>): string | undefined {
  let known = answers.get(domains);
  if (!known) answers.set(domains, (known = new Map()));
  if (known.has(candidate)) return known.get(candidate);
  const answer = imitated(candidate, domains);
  if (known.size >= ANSWERS_MAX) known.clear();
  known.set(candidate, answer);
  return answer;
}

function imitated(candidate: string, domains: ReadonlySet<string>): string | undefined {
  const domain = candidate.toLowerCase().replace(/\.$/, "");
  if (domain === "" || domains.has(domain)) return undefined;
  for (const ours of domains) if (domain.endsWith(`.${ours}`)) return undefined; // our own subdomain
  const shape = skeleton(domain);
  for (const ours of domains) {
    if (shape === skeleton(ours)) return ours;
    if (domain.startsWith(`${ours}.`)) return ours;
    const allowed = slipsAllowed(ours.length);
    if (allowed > 0 && editDistance(domain, ours, allowed) <= allowed) return ours;
  }
  return undefined;
}
