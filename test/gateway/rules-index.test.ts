/**
 * The indexed rule matcher against the rule of the README, written out plainly here: within a
 * kind the customer's rules come before the global ones, each in file order, and the first
 * whose sender pattern and IP range both match wins. Thousands of generated rules and
 * envelopes — near misses included (a parent domain, another case, the next network, the null
 * sender, IPv6) — must give the same answer both ways.
 */
import { BlockList, isIP } from "node:net";
import { describe, expect, it } from "vitest";
import { type Rule, createRuleMatcher } from "../../gateway/rules/rules";

function plainMatch(rules: readonly Rule[], kind: Rule["kind"], mailFrom: string, clientIp: string): Rule | undefined {
  const ordered = [
    ...rules.filter((r) => r.kind === kind && r.scope === "customer"),
    ...rules.filter((r) => r.kind === kind && r.scope === "global"),
  ];
  return ordered.find((rule) => {
    if (rule.sender !== undefined) {
      const sender = mailFrom.toLowerCase();
      if (rule.sender === "<>") {
        if (sender !== "") return false;
      } else {
        const [local, domain] = [rule.sender.slice(0, rule.sender.lastIndexOf("@")), rule.sender.split("@")[1] ?? ""];
        const at = sender.lastIndexOf("@");
        if (at < 0) return false;
        if (local !== "*" && local !== sender.slice(0, at)) return false;
        const senderDomain = sender.slice(at + 1);
        const ok = domain.startsWith("*.")
          ? senderDomain === domain.slice(2) || senderDomain.endsWith(domain.slice(1))
          : senderDomain === domain;
        if (!ok) return false;
      }
    }
    if (rule.ip) {
      if (isIP(clientIp) === 0) return false;
      const list = new BlockList();
      const [address = "", prefix] = rule.ip.split("/");
      const family = isIP(address) === 6 ? "ipv6" : "ipv4";
      if (prefix === undefined) list.addAddress(address, family);
      else list.addSubnet(address, Number(prefix), family);
      if (!list.check(clientIp, isIP(clientIp) === 6 ? "ipv6" : "ipv4")) return false;
    }
    return true;
  });
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

describe("the rule index", () => {
  it("answers exactly as the plain first-match rule over 3,000 rules and 5,000 envelopes", () => {
    const random = seeded(7);
    const int = (n: number) => Math.floor(random() * n);
    const domain = () => `d${int(40)}.example`;
    const ip = () => `10.${int(4)}.${int(8)}.${int(16)}`;
    const rules: Rule[] = [];
    for (let i = 0; i < 3_000; i++) {
      const kind = (["allow", "block", "custom"] as const)[int(3)] as Rule["kind"];
      const senders = [
        `u${int(20)}@${domain()}`,
        `*@${domain()}`,
        `*@*.${domain()}`,
        `u${int(20)}@*.${domain()}`,
        "<>",
        undefined,
      ];
      const ips = [undefined, ip(), `10.${int(4)}.${int(8)}.0/24`, `10.${int(4)}.0.0/16`, "2001:db8::/32", "0.0.0.0/0"];
      let sender = senders[int(senders.length)];
      let range = ips[int(ips.length)];
      if (sender === undefined && range === undefined) range = ip();
      if (range === "0.0.0.0/0" && int(4) > 0) range = undefined;
      if (sender === undefined && range === undefined) sender = `*@${domain()}`;
      rules.push({
        kind,
        scope: int(3) === 0 ? "global" : "customer",
        file: "rules.csv",
        line: i + 2,
        ...(sender !== undefined ? { sender } : {}),
        ...(range !== undefined ? { ip: range } : {}),
      });
    }
    const matcher = createRuleMatcher(rules);
    let decided = 0;
    for (let i = 0; i < 5_000; i++) {
      const senders = [
        `u${int(20)}@${domain()}`,
        `U${int(20)}@D${int(40)}.EXAMPLE`,
        `x@mail.${domain()}`,
        `x@a.b.${domain()}`,
        `x@not${domain()}`,
        "",
      ];
      const ips = [ip(), `10.${int(4)}.${int(8)}.${int(256)}`, "2001:db8::5", "192.0.2.1"];
      const mailFrom = senders[int(senders.length)] as string;
      const clientIp = ips[int(ips.length)] as string;
      const got = matcher.match({ mailFrom, clientIp });
      for (const kind of ["custom", "block", "allow"] as const) {
        const want = plainMatch(rules, kind, mailFrom, clientIp);
        expect(got[kind]?.line, `${kind} for ${mailFrom} from ${clientIp}`).toBe(want?.line);
        if (want) decided++;
      }
    }
    // The generated envelopes do hit rules (the comparison is not between two empty answers).
    expect(decided).toBeGreaterThan(2_000);
  });
});
