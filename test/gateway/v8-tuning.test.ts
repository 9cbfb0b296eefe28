import { describe, expect, it } from "vitest";
import { V8_FLAGS, tuneV8 } from "../../gateway/v8-tuning";

describe("the gateway's V8 flags (v8-tuning.ts)", () => {
  it("turns allocation-site pretenuring off, and names any flag V8 refused so the gateway can say so", () => {
    expect(V8_FLAGS).toContain("--no-allocation-site-pretenuring");
    const set: string[] = [];
    expect(tuneV8((flag) => set.push(flag))).toEqual([]);
    expect(set).toEqual([...V8_FLAGS]);
    const refused = tuneV8(() => {
      throw new Error("no such flag");
    });
    expect(refused).toEqual([...V8_FLAGS]);
  });
});
