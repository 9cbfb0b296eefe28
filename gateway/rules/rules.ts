/**
 * Allow, block and custom rules (SPEC §3): the model, the CSV format, and evaluation.
 *
 * CSV (header row; columns in any order, names case-insensitive):
 *
 *   kind,sender,ip,action,comment
 *   allow,news@vendor.example,,,monthly update we want
 *   block,*@spam.example,,reject,
 *   block,,203.0.113.0/24,delete,known bad network
 *   custom,alerts@monitor.example,198.51.100.7,,our monitoring box
 *
 * - `kind`: allow (bypasses spam, infomail and impersonation — only when the sender is
 *   authenticated, see auth.ts), block (rejects, or deletes with action delete), custom (by
 *   envelope sender AND sender IP/CIDR; bypasses every category);
 * - `sender`: envelope sender `user@domain`, `*@domain` (that domain), `*@*.domain` (the domain
 *   and its subdomains); `<>` is the null sender;
 * - `ip`: an IPv4/IPv6 address or CIDR range;
 * - `action`: for block only: `reject` (default) or `delete`.
 *
 * Refused, with line and column: an unknown kind, a malformed sender or IP, an allow without a
 * sender, a custom without sender or IP, a block without either, an action on a non-block
 * rule, and an allow for one of the customer's own domains: mail from outside may claim any
 * sender, so allowing your own domain lets anyone who forges it skip spam and impersonation
 * checks (use a custom rule with the sending system's IP instead).
 *
 * Precedence (evaluate): custom rules first (a deliberate, narrow exception), then block, then
 * allow; within a kind, the customer's rules before the global ones, each file top to bottom.
 */
import { BlockList, isIP } from "node:net";
import { isCidr, isDomainName } from "../names";
import { type CsvProblem, byLine, readTable } from "../csv";

export const RULE_COLUMNS = ["kind", "sender", "ip", "action", "comment"] as const;
export const RULE_KINDS = ["allow", "block", "custom"] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export interface Rule {
  readonly kind: RuleKind;
  readonly sender?: string;
  readonly ip?: string;
  /** Block rules: what happens to the message. */
  readonly action?: "reject" | "delete";
  readonly comment?: string;
  readonly scope: "global" | "customer";
  /** Where it was written: the file (relative to the project) and line. */
  readonly file: string;
  readonly line: number;
}

export interface RulesCsvResult {
  readonly rules: readonly Rule[];
  readonly problems: readonly CsvProblem[];
  readonly columns: readonly string[];
}

const SENDER_PATTERN = /^(?:<>|([^\s@<>()[\],;:"*]+|\*)@(\*\.)?([^\s@*]+))$/;

export function parseRulesCsv(
  text: string,
  source: { readonly file: string; readonly scope: "global" | "customer" },
  customerDomains: readonly string[] = [],
): RulesCsvResult {
  const table = readTable(text, RULE_COLUMNS, ["kind"]);
  const problems: CsvProblem[] = [...table.problems];
  const domains = new Set(customerDomains.map((d) => d.toLowerCase()));
  const rules: Rule[] = [];
  for (const row of table.rows) {
    const before = problems.length;
    const problem = (column: string, message: string) =>
      problems.push({ line: row.line, column: row.column(column), message });
    const kind = row.field("kind").trim().toLowerCase();
    const sender = row.field("sender").trim().toLowerCase();
    const ip = row.field("ip").trim();
    const action = row.field("action").trim().toLowerCase();
    if (!(RULE_KINDS as readonly string[]).includes(kind))
      problem("kind", `${JSON.stringify(row.field("kind").trim())} is not a rule kind (${RULE_KINDS.join(", ")})`);
    const match = sender ? SENDER_PATTERN.exec(sender) : undefined;
    const validSender = !!match && (match[3] === undefined || isDomainName(match[3]));
    if (sender && !validSender)
      problem("sender", `${JSON.stringify(sender)} is not a sender (user@domain, *@domain, *@*.domain or <>)`);
    if (ip && !isCidr(ip)) problem("ip", `${JSON.stringify(ip)} is not an IP address or CIDR range`);
    if (kind === "allow" && !sender) problem("sender", "an allow rule needs a sender");
    if (kind === "custom" && (!sender || !ip))
      problem(sender ? "ip" : "sender", "a custom rule needs both a sender and an IP or range");
    if (kind === "block" && !sender && !ip) problem("sender", "a block rule needs a sender, an IP or both");
    if (action && kind !== "block") problem("action", `${kind} rules take no action (only block: reject or delete)`);
    if (action && kind === "block" && action !== "reject" && action !== "delete")
      problem("action", `${JSON.stringify(action)} is not a block action (reject or delete)`);
    const senderDomain = validSender ? match?.[3] : undefined;
    if (kind === "allow" && senderDomain) {
      const own = [...domains].find((d) => senderDomain === d || (match?.[2] && d.endsWith(`.${senderDomain}`)));
      if (own)
        problem(
          "sender",
          `allowing ${own}, the customer's own domain, is refused: anyone can put ${own} in the sender of mail from outside, and an allow would let that forgery skip spam and impersonation checks; for a system that sends as ${own}, use a custom rule with its IP`,
        );
    }
    if (problems.length > before) continue;
    const comment = row.field("comment").trim();
    rules.push({
      kind: kind as RuleKind,
      ...(sender ? { sender } : {}),
      ...(ip ? { ip } : {}),
      ...(kind === "block" ? { action: (action || "reject") as "reject" | "delete" } : {}),
      ...(comment ? { comment } : {}),
      scope: source.scope,
      file: source.file,
      line: row.line,
    });
  }
  return { rules, problems: byLine(problems), columns: table.columns };
}

function senderMatches(pattern: string, mailFrom: string): boolean {
  const sender = mailFrom.toLowerCase();
  if (pattern === "<>") return sender === "";
  const at = pattern.lastIndexOf("@");
  const local = pattern.slice(0, at);
  let domain = pattern.slice(at + 1);
  const senderAt = sender.lastIndexOf("@");
  if (senderAt < 0) return false;
  const senderLocal = sender.slice(0, senderAt);
  const senderDomain = sender.slice(senderAt + 1);
  if (local !== "*" && local !== senderLocal) return false;
  if (domain.startsWith("*.")) {
    domain = domain.slice(2);
    return senderDomain === domain || senderDomain.endsWith(`.${domain}`);
  }
  return senderDomain === domain;
}

export interface RuleMatcher {
  /** The rule that applies, by the documented precedence; allow rules only when `allowApplies`. */
  match(input: { readonly mailFrom: string; readonly clientIp: string }): { custom?: Rule; block?: Rule; allow?: Rule };
  readonly size: number;
}

interface Entry {
  readonly rule: Rule;
  /** Precedence within its kind: customer rules before global ones, each in file order. */
  readonly order: number;
  readonly ips: BlockList | undefined;
}

function ipv4ToInt(address: string): number | undefined {
  const parts = address.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (!/^\d{1,3}$/.test(part) || octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

function push<K>(map: Map<K, Entry[]>, key: K, entry: Entry): void {
  const list = map.get(key);
  if (list) list.push(entry);
  else map.set(key, [entry]);
}

/**
 * One kind's rules, indexed so a message costs a few map lookups however many rules there are
 * (10,000 rules: see bench/rules-scale.ts): senders by address, by domain and by parent domain
 * for `*.` patterns; sender-less IPv4 rules by network for each prefix length in use. The
 * lookups only find candidates: each is checked in full, and the first by precedence wins.
 */
class KindIndex {
  private readonly byAddress = new Map<string, Entry[]>();
  private readonly byDomain = new Map<string, Entry[]>();
  /** `*@*.domain` and `user@*.domain`, by `domain`. */
  private readonly bySuffix = new Map<string, Entry[]>();
  private readonly nullSender: Entry[] = [];
  /** Sender-less IPv4 rules: prefix length -> network (as an integer >>> (32 - length)) -> rules. */
  private readonly byNetwork = new Map<number, Map<number, Entry[]>>();
  /** Sender-less rules not indexed by network (IPv6, or neither sender nor IP): checked one by one. */
  private readonly scanned: Entry[] = [];

  constructor(entries: readonly Entry[]) {
    for (const entry of entries) {
      const sender = entry.rule.sender?.toLowerCase();
      if (sender === "<>") this.nullSender.push(entry);
      else if (sender !== undefined) {
        const at = sender.lastIndexOf("@");
        const local = sender.slice(0, at);
        const domain = sender.slice(at + 1);
        if (domain.startsWith("*.")) push(this.bySuffix, domain.slice(2), entry);
        else if (local === "*") push(this.byDomain, domain, entry);
        else push(this.byAddress, sender, entry);
      } else {
        const [address = "", prefix] = (entry.rule.ip ?? "").split("/");
        const value = ipv4ToInt(address);
        if (value === undefined) {
          this.scanned.push(entry);
          continue;
        }
        const length = prefix === undefined ? 32 : Number(prefix);
        let networks = this.byNetwork.get(length);
        if (!networks) this.byNetwork.set(length, (networks = new Map()));
        push(networks, length === 0 ? 0 : Math.floor(value / 2 ** (32 - length)), entry);
      }
    }
  }

  candidates(mailFrom: string, clientIp: string): Entry[] {
    const found: Entry[] = [];
    const add = (list: Entry[] | undefined) => {
      if (list) for (const entry of list) found.push(entry);
    };
    const sender = mailFrom.toLowerCase();
    if (sender === "") add(this.nullSender);
    else {
      const at = sender.lastIndexOf("@");
      if (at >= 0) {
        const domain = sender.slice(at + 1);
        add(this.byAddress.get(sender));
        add(this.byDomain.get(domain));
        for (let suffix = domain; ;) {
          add(this.bySuffix.get(suffix));
          const dot = suffix.indexOf(".");
          if (dot < 0) break;
          suffix = suffix.slice(dot + 1);
        }
      }
    }
    const v4 = ipv4ToInt(clientIp.startsWith("::ffff:") ? clientIp.slice(7) : clientIp);
    if (v4 !== undefined)
      for (const [length, networks] of this.byNetwork)
        add(networks.get(length === 0 ? 0 : Math.floor(v4 / 2 ** (32 - length))));
    add(this.scanned);
    return found;
  }
}

export function createRuleMatcher(rules: readonly Rule[]): RuleMatcher {
  const ordered = (kind: RuleKind) =>
    new KindIndex(
      [
        ...rules.filter((r) => r.kind === kind && r.scope === "customer"),
        ...rules.filter((r) => r.kind === kind && r.scope === "global"),
      ].map((rule, order) => {
        let ips: BlockList | undefined;
        if (rule.ip) {
          ips = new BlockList();
          const [address = "", prefix] = rule.ip.split("/");
          const family = isIP(address) === 6 ? "ipv6" : "ipv4";
          if (prefix === undefined) ips.addAddress(address, family);
          else ips.addSubnet(address, Number(prefix), family);
        }
        return { rule, order, ips };
      }),
    );
  const lists = { custom: ordered("custom"), block: ordered("block"), allow: ordered("allow") };
  const hit = (entry: Entry, mailFrom: string, clientIp: string) => {
    if (entry.rule.sender !== undefined && !senderMatches(entry.rule.sender, mailFrom)) return false;
    if (entry.ips) {
      const family = isIP(clientIp) === 6 ? "ipv6" : "ipv4";
      if (isIP(clientIp) === 0 || !entry.ips.check(clientIp, family)) return false;
    }
    return true;
  };
  return {
    size: rules.length,
    match({ mailFrom, clientIp }) {
      const find = (kind: RuleKind) => {
        let best: Entry | undefined;
        for (const entry of lists[kind].candidates(mailFrom, clientIp))
          if ((!best || entry.order < best.order) && hit(entry, mailFrom, clientIp)) best = entry;
        return best?.rule;
      };
      const custom = find("custom");
      const block = find("block");
      const allow = find("allow");
      return { ...(custom ? { custom } : {}), ...(block ? { block } : {}), ...(allow ? { allow } : {}) };
    },
  };
}
