/**
 * Benchmark (not a test): the cost of the rules per message at scale (issue #8: 10,000 rules).
 * A rule set of RULES rules in the mix a large MSP has — exact senders, `*@domain`,
 * `*@*.domain`, IPv4 addresses and CIDR ranges, sender + IP — split between customer and global
 * scope, and 200,000 envelopes (a fifth of them hitting a rule). Reports the time of
 * `match()` per message (p50, p99, mean) and the matcher's build time and memory.
 *
 *   tsx bench/rules-scale.ts [RULES] [ENVELOPES]
 */
import { cpus } from "node:os";
import { type Rule, createRuleMatcher } from "../gateway/rules/rules";

const RULES = Number(process.argv[2] ?? 10_000);
const PROBES = Number(process.argv[3] ?? 200_000);

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

function main(): void {
  const random = seeded(42);
  const int = (n: number) => Math.floor(random() * n);
  const ip = () => `${10 + int(200)}.${int(256)}.${int(256)}.${int(256)}`;
  const rules: Rule[] = [];
  const kinds = ["allow", "block", "custom"] as const;
  for (let i = 0; i < RULES; i++) {
    const kind = kinds[i % 3] as Rule["kind"];
    const shape = i % 5;
    const base = {
      kind,
      scope: i % 4 === 0 ? ("global" as const) : ("customer" as const),
      file: i % 4 === 0 ? "stacks/global-rules.csv" : "stacks/acme/rules.csv",
      line: i + 2,
      ...(kind === "block" ? { action: "reject" as const } : {}),
    };
    if (shape === 0) rules.push({ ...base, sender: `user${i}@sender${i % 2000}.example` });
    else if (shape === 1) rules.push({ ...base, sender: `*@domain${i}.example` });
    else if (shape === 2) rules.push({ ...base, sender: `*@*.zone${i}.example` });
    else if (shape === 3) rules.push({ ...base, ip: i % 2 ? ip() : `${ip().split(".").slice(0, 3).join(".")}.0/24` });
    else
      rules.push({ ...base, sender: `*@partner${i}.example`, ip: `${ip().split(".").slice(0, 2).join(".")}.0.0/16` });
  }
  const heapBefore = process.memoryUsage().heapUsed;
  const buildStart = process.hrtime.bigint();
  const matcher = createRuleMatcher(rules);
  const buildMs = Number(process.hrtime.bigint() - buildStart) / 1e6;
  const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;

  const probes: { mailFrom: string; clientIp: string }[] = [];
  for (let i = 0; i < PROBES; i++) {
    const target = rules[int(rules.length)] as Rule;
    if (i % 5 === 0 && target.sender) {
      const sender = target.sender.replace("*@*.", "x@mail.").replace("*@", "someone@");
      probes.push({ mailFrom: sender, clientIp: target.ip ? (target.ip.split("/")[0] ?? ip()) : ip() });
    } else probes.push({ mailFrom: `person${int(100_000)}@nowhere${int(50_000)}.example`, clientIp: ip() });
  }
  let hits = 0;
  for (let i = 0; i < Math.min(2_000, PROBES); i++) matcher.match(probes[i] as { mailFrom: string; clientIp: string }); // warm up
  const times: number[] = [];
  const started = process.hrtime.bigint();
  for (const probe of probes) {
    const t0 = process.hrtime.bigint();
    const result = matcher.match(probe);
    times.push(Number(process.hrtime.bigint() - t0) / 1000);
    if (result.custom || result.block || result.allow) hits++;
  }
  const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))] ?? 0;
  console.log("Moat rules at scale");
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`);
  console.log(
    `${RULES} rules (exact senders, *@domain, *@*.domain, IPv4 and CIDR, sender + CIDR; customer and global): matcher built in ${buildMs.toFixed(0)} ms, ~${heapMb.toFixed(1)} MB heap`,
  );
  console.log(
    `match() over ${PROBES} envelopes (${hits} matched a rule): p50 ${at(0.5).toFixed(2)} µs, p99 ${at(0.99).toFixed(2)} µs, mean ${((totalMs * 1000) / PROBES).toFixed(2)} µs per message`,
  );
}

main();
