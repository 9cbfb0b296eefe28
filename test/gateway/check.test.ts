import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { PROJECT_DIR } from "../../components/stack-config";
import { checkStacks } from "../../gateway/check";

function project(stacks: Record<string, Record<string, unknown>>, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "moat-check-"));
  mkdirSync(join(dir, "stacks"));
  for (const [name, config] of Object.entries(stacks))
    writeFileSync(join(dir, "stacks", `Pulumi.${name}.yaml`), stringify({ config }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

const base = (domain: string) => ({
  "moat:tenantId": "11111111-2222-3333-4444-555555555555",
  "moat:domains": [{ name: domain }],
  "moat:gateway": { hosting: "external", egressIps: ["203.0.113.25"], inboundIp: "203.0.113.30" },
  "moat:users": "stacks/users.csv",
});

describe("moat check", () => {
  it("passes the stacks in this repository", () => {
    const lines: string[] = [];
    expect(checkStacks(PROJECT_DIR, (line) => lines.push(line))).toBe(0);
    expect(lines.at(-1)).toMatch(/stack\(s\) checked: no problems$/);
  });

  it("lists every problem of every stack, including a domain declared twice", () => {
    const dir = project(
      {
        acme: base("acme.com"),
        other: base("acme.com"),
        third: { ...base("third.example"), "moat:users": "stacks/third.csv", "moat:policy": { spam: "bounce" } },
      },
      { "stacks/users.csv": "address\njo@acme.com\n", "stacks/third.csv": "address\njo@acme.com\n" },
    );
    const lines: string[] = [];
    expect(checkStacks(dir, (line) => lines.push(line))).toBe(2);
    expect(lines).toEqual([
      'stacks/Pulumi.third.yaml: moat:policy.spam: Invalid option: expected one of "deliver"|"quarantine"|"delete"|"reject"',
      "stacks/Pulumi.other.yaml: moat:domains: acme.com is also declared by stack acme",
      "2 problem(s) in 3 stack(s)",
    ]);
  });
});
