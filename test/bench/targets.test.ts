/**
 * bench/peers.ts's verdicts on issue #8's targets (bench/targets.ts): what the README's figures
 * and "missed by how much and why" are read from.
 */
import { describe, expect, it } from "vitest";
import { type ModeFigures, type TargetInputs, median, targetVerdicts } from "../../bench/targets";

interface Round {
  readonly name: string;
  readonly modes: Record<"conn" | "persistent", ModeFigures>;
  readonly p99Ms: number;
  readonly heldMb: number;
}

const inputs: TargetInputs<Round> = {
  modes: [
    ["conn", (r) => r.modes.conn],
    ["persistent", (r) => r.modes.persistent],
  ],
  p99Ms: (r) => r.p99Ms,
  heldRssMb: (r) => r.heldMb,
  heldSessions: 500,
  cores: 2,
};
const names = { moat: "moat", postfix: "postfix", haraka: "haraka" };
const mode = (rate: number, cpuPerMsg = 1, loadPerMsg = 1): ModeFigures => ({ rate, cpuPerMsg, loadPerMsg });
const system = (name: string, conn: ModeFigures, persistent: ModeFigures, p99Ms = 10, heldMb = 100): Round => ({
  name,
  modes: { conn, persistent },
  p99Ms,
  heldMb,
});

describe("issue #8's targets from the peers bench", () => {
  it("judges each mode against Postfix and twice Haraka, saying by how much a target is missed", () => {
    const round = [
      system("postfix", mode(200), mode(300)),
      system("haraka", mode(300), mode(400)),
      system("moat", mode(330, 3, 1), mode(600, 2, 0.6), 35.5, 90),
    ];
    const lines = targetVerdicts([round], names, "the full pipeline", inputs);
    expect(lines[1]).toBe("  >= Postfix: conn 1.65x (met); persistent 2.00x (met)");
    expect(lines[2]).toBe(
      "  >= 2x Haraka's smtp_forward: conn 1.10x (missed, 45% short); persistent 1.50x (missed, 25% short)",
    );
    // 2 x 300 msgs/s x 3 ms = 1.8 cores of Moat's own, x 1 ms = 0.6 of the load's; 2 x 400 x 2 ms = 1.6, + 0.48.
    expect(lines[3]).toContain("conn 1.80 + 0.60 = 2.40, more than the machine has");
    expect(lines[3]).toContain("persistent 1.60 + 0.48 = 2.08, more than the machine has");
    expect(lines[4]).toBe("  p99 <= 20 ms at half load: 35.5 ms (missed by 15.5 ms)");
    expect(lines[5]).toBe("  <= 150 MB RSS with 500 sessions: 90 MB (met)");
  });

  it("judges several rounds on the median of the rounds' ratios, each round's printed", () => {
    const round = (moatRate: number, harakaRate: number, p99: number) => [
      system("postfix", mode(100), mode(100)),
      system("haraka", mode(harakaRate), mode(harakaRate)),
      system("moat", mode(moatRate, 1, 0.2), mode(moatRate, 1, 0.2), p99),
    ];
    const lines = targetVerdicts([round(420, 200, 30), round(300, 200, 18), round(500, 200, 19)], names, "x", inputs);
    // ratios 2.10, 1.50, 2.50: the median, 2.10, meets twice Haraka although one round missed it.
    expect(lines[2]).toContain("conn 2.10x / 1.50x / 2.50x, median 2.10x (met)");
    expect(lines[4]).toBe("  p99 <= 20 ms at half load: 30.0 ms / 18.0 ms / 19.0 ms, median 19.0 ms (met)");
    // 2 x 200 x 1 ms = 0.4 cores + 0.08: within the machine, so no "more than" in any mode.
    expect(lines[3]).toContain("conn 0.40 + 0.08 = 0.48;");
    expect(lines[3]).not.toContain("more than the machine has");
  });

  it("says what was not measured, and prints nothing for a way Moat was not run", () => {
    const round = [system("moat", mode(300), mode(500))];
    const lines = targetVerdicts([round], names, "x", inputs);
    expect(lines[1]).toBe("  >= Postfix: not measured in this run");
    expect(lines[2]).toBe("  >= 2x Haraka's smtp_forward: not measured in this run");
    expect(lines.some((line) => line.includes("would keep busy"))).toBe(false);
    expect(targetVerdicts([round], { ...names, moat: "moat-thread" }, "x", inputs)).toEqual([]);
  });

  it("prints Moat against Haraka with TCP_NODELAY beside the target when that peer was measured", () => {
    const round = [
      system("postfix", mode(200), mode(300)),
      system("haraka", mode(300), mode(400)),
      system("haraka-nodelay", mode(400), mode(800)),
      system("moat", mode(720), mode(1200)),
    ];
    const lines = targetVerdicts([round], { ...names, harakaNoDelay: "haraka-nodelay" }, "x", inputs);
    // The target itself is still judged on stock Haraka's smtp_forward.
    expect(lines[2]).toBe("  >= 2x Haraka's smtp_forward: conn 2.40x (met); persistent 3.00x (met)");
    expect(lines[4]).toBe(
      "  (beside the target) >= 2x Haraka's smtp_forward with TCP_NODELAY: conn 1.80x (missed, 10% short); persistent 1.50x (missed, 25% short)",
    );
    expect(lines[5]).toBe("  p99 <= 20 ms at half load: 10.0 ms (met)");
    // Named but not in the round: no line for it.
    const without = targetVerdicts(
      [round.filter((r) => r.name !== "haraka-nodelay")],
      { ...names, harakaNoDelay: "haraka-nodelay" },
      "x",
      inputs,
    );
    expect(without.some((line) => line.includes("TCP_NODELAY"))).toBe(false);
  });

  it("takes the middle value, or the mean of the middle two", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
