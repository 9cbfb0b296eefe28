/**
 * Sender authentication with mailauth: SPF (envelope sender, client IP, HELO), DKIM, DMARC and
 * ARC. The results go into an `Authentication-Results` header added on delivery, and into
 * findings:
 *
 * - DMARC fail with the domain's policy `reject` -> phishing (someone sends as a domain that
 *   asks for exactly that to be refused: spoofing);
 * - DMARC fail with policy `quarantine` -> spam;
 * - DMARC fail with `p=none`, SPF or DKIM failures -> reasons only (no category);
 * - `facts.senderAuthenticated`: DMARC pass, or — where the From domain publishes no DMARC —
 *   SPF or DKIM pass for that domain. Allow rules need it (an allow for an address anyone can
 *   forge is no allow at all).
 *
 * It reads the message while it arrives (a streaming filter), beside the MIME parse. The body is
 * read only when a header asks for it (a DKIM signature or an ARC set, whose body hashes are
 * checked); for an unsigned message mailauth gets the header block alone, which gives the same
 * results without running the whole body through its line-by-line canonicalization.
 *
 * DNS through `MOAT_DNS_SERVERS`/`dns.servers` (or an injected resolver in tests), each lookup
 * bounded by the resolver's timeout. A DNS failure is mailauth's `temperror`, a reason, not an
 * engine failure: authentication then simply does not vouch for the sender.
 */
import { Resolver } from "node:dns/promises";
import { Readable } from "node:stream";
import "./mailauth-without-bimi"; // before mailauth: it loads its BIMI code when it loads
import { authenticate } from "mailauth";
import { createExpiringCache } from "../expiring-cache";
import { emptyLineEnd } from "../headers";
import { domainOf } from "../verify/recipients";
import "./mailauth-header-scan";
import type { Filter, FilterResult, Finding } from "./types";

const DNS_TIMEOUT_MS = 3_000;
const DNS_TRIES = 2;

export type DnsResolve = (name: string, rrtype: string) => Promise<unknown>;

/** How long an answer is reused: short next to the TTLs SPF and DMARC records have in practice. */
const DNS_CACHE_TTL_MS = 60_000;
const DNS_CACHE_MAX_ENTRIES = 10_000;
/** "No such name" and "no such record" are answers too; timeouts and server failures are not kept. */
const CACHED_DNS_ERRORS: ReadonlySet<string> = new Set(["ENOTFOUND", "ENODATA"]);

/**
 * The authentication's DNS lookups, with a small cache: mail comes from the same few domains
 * over and over, and each message asks for their SPF and DMARC records again. Answers are kept
 * DNS_CACHE_TTL_MS (at most DNS_CACHE_MAX_ENTRIES, oldest out first); concurrent lookups of one
 * name share one query.
 */
export function createDnsResolve(servers: readonly string[], now: () => number = Date.now): DnsResolve {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (servers.length > 0) resolver.setServers([...servers]);
  const cache = createExpiringCache<Promise<unknown>>(DNS_CACHE_TTL_MS, DNS_CACHE_MAX_ENTRIES, now);
  return (name, rrtype) => {
    const key = `${rrtype} ${name.toLowerCase()}`;
    return cache.get(key, () => {
      const answer = resolver.resolve(name, rrtype as "TXT") as Promise<unknown>;
      answer.catch((error: NodeJS.ErrnoException) => {
        if (!CACHED_DNS_ERRORS.has(error.code ?? "")) cache.forget(key, answer);
      });
      return answer;
    });
  };
}

interface Status {
  result?: string;
  comment?: string;
}

/** Beyond this a header block is not looked through: the whole message goes to mailauth. */
const HEADER_BLOCK_MAX_BYTES = 1024 * 1024;
const SIGNATURE_HEADER = /^(?:dkim-signature|arc-seal|arc-message-signature)[ \t]*:/im;

/** The message as mailauth needs it: whole when signed, otherwise its header block alone. */
export function authInput(message: Readable): Readable {
  return Readable.from(
    (async function* () {
      let head: Buffer = Buffer.alloc(0);
      let passing = false;
      try {
        for await (const chunk of message as AsyncIterable<Buffer>) {
          if (passing) {
            yield chunk;
            continue;
          }
          // The first chunk as it is (mailauth only reads it): no copy of a message that came in one.
          head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
          // The empty line may end in LF or CRLF after either (headers.ts emptyLineEnd).
          const emptyLine = emptyLineEnd(head);
          const end = emptyLine < 0 ? -1 : emptyLine + 1;
          if (end < 0 && head.length <= HEADER_BLOCK_MAX_BYTES) continue;
          const block = end < 0 ? head : head.subarray(0, end);
          if (end < 0 || SIGNATURE_HEADER.test(block.toString("latin1"))) {
            passing = true;
            yield head;
            continue;
          }
          yield block;
          // Destroyed before the loop ends early: else the loop destroys it with an AbortError,
          // whose stack trace (source-mapped) cost more than the rest of this function.
          message.destroy();
          return;
        }
        if (!passing) yield head; // no body at all
      } finally {
        message.destroy();
      }
    })(),
    { objectMode: false },
  );
}

export function createAuthFilter(options: { readonly resolve: DnsResolve; readonly hostname: string }): Filter {
  return {
    name: "auth",
    streaming: true,
    async run(message): Promise<FilterResult> {
      if (message.direction === "outbound") return { findings: [], facts: { senderAuthenticated: true } };
      const result = (await authenticate(authInput(message.source.open()), {
        ip: message.clientIp,
        helo: message.helo,
        sender: message.mailFrom,
        mta: options.hostname,
        resolver: options.resolve as never,
        disableBimi: true,
      })) as unknown as {
        headers: string;
        spf?: { status?: Status; domain?: string } | false;
        dkim?: { results?: { status: Status; signingDomain?: string }[]; headerFrom?: string[] } | false;
        dmarc?: { status?: Status; domain?: string; policy?: string } | false;
        arc?: { status: Status };
      };
      const findings: Finding[] = [];
      // mailauth gives `false` for a check it could not start (DMARC without a From header).
      const spf = result.spf ? (result.spf.status?.result ?? "none") : "none";
      const dkimResults = (result.dkim ? result.dkim.results : undefined) ?? [];
      const dmarc = result.dmarc ? (result.dmarc.status?.result ?? "none") : "none";
      const policy = (result.dmarc ? result.dmarc.policy : undefined) ?? "none";
      const fromDomain = domainOf((result.dkim ? result.dkim.headerFrom?.[0] : undefined)?.toLowerCase() ?? "");
      findings.push({
        detector: "auth",
        symbol: `SPF_${spf.toUpperCase()}`,
        detail: `SPF ${spf} for ${message.mailFrom || "<>"} from ${message.clientIp}`,
      });
      for (const dkim of dkimResults) {
        if (!dkim.signingDomain) {
          findings.push({ detector: "auth", symbol: "DKIM_NONE", detail: "DKIM none (no signature)" });
          continue;
        }
        findings.push({
          detector: "auth",
          symbol: `DKIM_${(dkim.status.result ?? "none").toUpperCase()}`,
          detail: `DKIM ${dkim.status.result ?? "none"} (d=${dkim.signingDomain ?? "?"})`,
        });
      }
      if (dmarc === "fail") {
        const category = policy === "reject" ? "phishing" : policy === "quarantine" ? "spam" : undefined;
        findings.push({
          detector: "auth",
          ...(category ? { category } : {}),
          symbol: `DMARC_FAIL_${policy.toUpperCase()}`,
          detail: `DMARC fail for ${(result.dmarc && result.dmarc.domain) || fromDomain}, whose policy is ${policy}: the From address is not authenticated`,
        });
      } else {
        findings.push({
          detector: "auth",
          symbol: `DMARC_${dmarc.toUpperCase()}`,
          detail: `DMARC ${dmarc}${result.dmarc && result.dmarc.domain ? ` for ${result.dmarc.domain}` : ""}`,
        });
      }
      const dkimPassForFrom = dkimResults.some(
        (d) =>
          d.status.result === "pass" &&
          !!d.signingDomain &&
          (fromDomain === d.signingDomain || fromDomain.endsWith(`.${d.signingDomain}`)),
      );
      const spfPassForFrom = spf === "pass" && domainOf(message.mailFrom) === fromDomain;
      const senderAuthenticated = dmarc === "pass" || (dmarc === "none" && (dkimPassForFrom || spfPassForFrom));
      return {
        findings,
        headers: splitHeaders(result.headers).filter((h) => /^Authentication-Results:/i.test(h)),
        facts: { senderAuthenticated, spf, dmarc },
      };
    },
  };
}

/** "A: 1\r\n b\r\nC: 2\r\n" -> ["A: 1\r\n b", "C: 2"]: one entry per header, folding kept. */
function splitHeaders(block: string): string[] {
  return block
    .replace(/\r?\n$/, "")
    .split(/\r?\n(?=\S)/)
    .filter((h) => h.length > 0);
}
