import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import "../../gateway/filters/auth";

const requireHere = createRequire(__filename);

describe("mailauth without its BIMI code", () => {
  it("gets a stand-in for BIMI that says why it is not there, and loads none of BIMI's packages", () => {
    const mailauth = requireHere("mailauth") as { bimi: (options: object) => unknown };
    expect(() => mailauth.bimi({})).toThrow(/the gateway asks for no BIMI/);
    const loaded = Object.keys(requireHere.cache);
    expect(loaded.some((file) => file.includes("/node_modules/mailauth/lib/dmarc/"))).toBe(true);
    // BIMI's own packages: its fetch (mailauth's undici), its certificate and logo parsers.
    const bimiPackages =
      /\/node_modules\/(mailauth\/node_modules\/undici|@postalsys\/vmc|asn1js|@peculiar|fast-xml-parser)\//;
    expect(loaded.filter((file) => bimiPackages.test(file))).toEqual([]);
  });
});
