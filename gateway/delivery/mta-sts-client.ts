/**
 * MTA-STS (RFC 8461) for mail the gateway sends to the internet: discover a recipient
 * domain's policy (`_mta-sts` TXT, then the HTTPS policy file), cache it for max_age, and
 * say which MX hosts may be used and whether TLS with a valid certificate is required.
 *
 * A failed discovery or fetch never blocks mail by itself: a still-valid cached policy is
 * used, otherwise the domain is treated as having none (RFC 8461 §5).
 */
import type { MxResolver } from "./mx";

export interface MtaStsPolicy {
  readonly id: string;
  readonly mode: "enforce" | "testing" | "none";
  readonly mx: readonly string[];
  readonly maxAgeS: number;
}

export type PolicyFetcher = (domain: string) => Promise<string>;

/** RFC 8461 §3.3: fetch with a short timeout, no redirects. */
const FETCH_TIMEOUT_MS = 10_000;
/** RFC 8461 §3.2: policies larger than 64 KB are invalid. */
const POLICY_MAX_BYTES = 64 * 1024;
const MAX_AGE_LIMIT_S = 31_557_600;

export const fetchPolicyOverHttps: PolicyFetcher = async (domain) => {
  const response = await fetch(`https://mta-sts.${domain}/.well-known/mta-sts.txt`, {
    redirect: "error",
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  if (!(response.headers.get("content-type") ?? "").startsWith("text/plain")) throw new Error("not text/plain");
  const text = await response.text();
  if (text.length > POLICY_MAX_BYTES) throw new Error("policy larger than 64 KB");
  return text;
};

export function parsePolicy(text: string, id: string): MtaStsPolicy | undefined {
  const fields = text
    .split(/\r?\n/)
    .map((line) => /^([a-z_]+):\s*(.*?)\s*$/i.exec(line))
    .filter((m): m is RegExpExecArray => m !== null);
  const get = (key: string) => fields.filter((m) => m[1]?.toLowerCase() === key).map((m) => m[2] ?? "");
  const mode = get("mode")[0];
  const maxAge = Number(get("max_age")[0]);
  if (
    get("version")[0] !== "STSv1" ||
    !(mode === "enforce" || mode === "testing" || mode === "none") ||
    !Number.isInteger(maxAge) ||
    maxAge < 0
  )
    return undefined;
  const mx = get("mx").map((m) => m.toLowerCase());
  if (mode !== "none" && mx.length === 0) return undefined;
  return { id, mode, mx, maxAgeS: Math.min(maxAge, MAX_AGE_LIMIT_S) };
}

/** `*.example.com` matches exactly one more label (RFC 8461 §4.1). */
export function mxMatches(pattern: string, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, "");
  if (pattern.startsWith("*.")) {
    const suffix = pattern.slice(1);
    return name.endsWith(suffix) && !name.slice(0, -suffix.length).includes(".") && name.length > suffix.length;
  }
  return name === pattern;
}

export interface MtaStsPolicies {
  policyFor(domain: string): Promise<MtaStsPolicy | undefined>;
}

export function createMtaStsPolicies(options: {
  resolver: MxResolver;
  fetchPolicy?: PolicyFetcher;
  now?: () => number;
}): MtaStsPolicies {
  const fetchPolicy = options.fetchPolicy ?? fetchPolicyOverHttps;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { policy: MtaStsPolicy; expiresAt: number }>();
  return {
    async policyFor(domain) {
      const cached = cache.get(domain);
      const valid = cached && cached.expiresAt > now() ? cached.policy : undefined;
      let id: string | undefined;
      try {
        const record = (await options.resolver.txt(`_mta-sts.${domain}`)).find((txt) => /^v=STSv1\s*;/.test(txt));
        id = record ? /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(?:;|$)/.exec(record)?.[1] : undefined;
      } catch {
        return valid;
      }
      if (!id) return valid;
      if (valid && valid.id === id) return valid;
      try {
        const policy = parsePolicy(await fetchPolicy(domain), id);
        if (!policy) return valid;
        cache.set(domain, { policy, expiresAt: now() + policy.maxAgeS * 1000 });
        return policy;
      } catch {
        return valid;
      }
    },
  };
}
