/** A bad stack config stops the program before any resource is registered. */
import { describe, expect, it } from "vitest";
import { PROJECT_DIR, readStackFile } from "../../components/stack-config";
import { mockStack } from "../helpers/pulumi-mocks";

describe("the program with a bad stack config", () => {
  it("fails naming every key path and registers nothing", async () => {
    const config = {
      ...readStackFile(PROJECT_DIR, "example"),
      "moat:domains": [{ name: "northwind" }],
      "moat:verfication": "static",
    };
    const registered = await mockStack("broken", config);
    const failure = await import("../../index.js").then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.message).toContain('moat:domains[0].name: "northwind" is not a domain name');
    expect(failure?.message).toContain("moat:verfication: unknown key");
    expect(registered).toEqual([]);
  });
});
