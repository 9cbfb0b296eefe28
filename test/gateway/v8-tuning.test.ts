import { describe, expect, it } from "vitest";
import { V8_FLAGS, tuneV8 } from "../../gateway/v8-tuning";

describe("the gateway's V8 flags (v8-tuning.ts)", () => {
  it("turns allocation-site pretenuring off, applying every flag in the list", () => {
    expect(V8_FLAGS).toContain("--no-allocation-site-pretenuring");
    const set: string[] = [];
    tuneV8((flag) => set.push(flag));
    expect(set).toEqual([...V8_FLAGS]);
  });
});
