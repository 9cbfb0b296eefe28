import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS, V8_FLAGS, missingNodeFlags, tuneV8 } from "../../gateway/v8-tuning";
import { ROOT, freePort, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";

describe("the gateway's V8 flags (v8-tuning.ts)", () => {
  it("turns allocation-site pretenuring off, applying every flag in the list", () => {
    expect(V8_FLAGS).toContain("--no-allocation-site-pretenuring");
    const set: string[] = [];
    tuneV8((flag) => set.push(flag));
    expect(set).toEqual([...V8_FLAGS]);
  });

  it("finds the node flags a process was started without, in its arguments or NODE_OPTIONS", () => {
    expect(NODE_FLAGS).toContain("--max-semi-space-size=4");
    expect(NODE_FLAGS).toContain("--v8-pool-size=1");
    expect(NODE_FLAGS).toContain("--no-short-builtin-calls");
    expect(missingNodeFlags([], "")).toEqual([...NODE_FLAGS]);
    expect(missingNodeFlags(["--enable-source-maps"], "--max-old-space-size=512")).toEqual([...NODE_FLAGS]);
    expect(missingNodeFlags([...NODE_FLAGS], "")).toEqual([]);
    expect(missingNodeFlags([], ` ${NODE_FLAGS.join("  ")} --trace-warnings`)).toEqual([]);
    // Another value is an admin's choice; node reads underscores as dashes.
    expect(missingNodeFlags(["--max-semi-space-size=8", "--v8-pool-size=4", "--no-short-builtin-calls"], "")).toEqual(
      [],
    );
    expect(missingNodeFlags(["--max_semi_space_size=4", "--v8-pool-size=1", "--no-short-builtin-calls"], "")).toEqual(
      [],
    );
    // Each flag on its own: one given on the command line, the other in NODE_OPTIONS, or missing.
    expect(missingNodeFlags(["--max-semi-space-size=4"], "--v8-pool-size=2 --no-short-builtin-calls")).toEqual([]);
    expect(missingNodeFlags(["--max-semi-space-size=4"], "")).toEqual(["--v8-pool-size=1", "--no-short-builtin-calls"]);
    // A boolean flag's either way is the same flag: turned back on, it is the admin's choice.
    expect(missingNodeFlags(["--max-semi-space-size=4", "--v8-pool-size=1", "--short-builtin-calls"], "")).toEqual([]);
    expect(missingNodeFlags(["--max-semi-space-size=4", "--v8-pool-size=1"], "--no_short_builtin_calls")).toEqual([]);
  });

  it("is on node's command line wherever the gateway is started: the image, npm start, npm run moat", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? "[]") as string[];
    expect(cmd).toEqual(["node", ...NODE_FLAGS, "dist/gateway/cli.js", "serve"]);
    const { scripts } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    expect(scripts.start).toBe(`node ${NODE_FLAGS.join(" ")} --import tsx gateway/cli.ts serve`);
    expect(scripts.moat).toBe(`node ${NODE_FLAGS.join(" ")} --import tsx gateway/cli.ts`);
  });

  it("builds the image's native modules and runs it on one Node.js, one package.json supports", () => {
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const stages = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    // better-sqlite3 is compiled in the first stage and loaded in the last: one node for both.
    expect(new Set(stages).size).toBe(1);
    const major = Number(/^node:(\d+)-/.exec(stages[0] ?? "")?.[1]);
    const { engines } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } };
    const least = Number(/^>=(\d+)\./.exec(engines.node)?.[1]);
    expect(major).toBeGreaterThanOrEqual(least);
  });

  it("moat serve warns when node was started without them, and not when it was", async () => {
    const config = writeTestConfig({ smartHostPort: await freePort() });
    try {
      for (const nodeFlags of [[], NODE_FLAGS]) {
        const gateway = await startGatewayProcess(
          ["--config", config.file],
          { MOAT_LOG_LEVEL: "warn" },
          undefined,
          nodeFlags,
        );
        await gateway.stop();
        const output = gateway.stdout() + gateway.stderr();
        if (nodeFlags.length === 0) {
          expect(output).toContain("node was started without the gateway's V8 flags");
          expect(output).toContain("--max-semi-space-size=4 --v8-pool-size=1");
        } else expect(output).not.toContain("started without");
      }
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });
});
