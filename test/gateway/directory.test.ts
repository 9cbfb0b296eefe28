/** Who is a recipient, from Entra ID objects and the spreadsheet, and how the two merge. */
import { describe, expect, it } from "vitest";
import { AddressIndex } from "../../gateway/directory/address-index";
import { createDirectory, recordsFromStaticUsers } from "../../gateway/directory/directory";
import { type GraphUser, recordFromGroup, recordFromUser } from "../../gateway/directory/graph-records";

const DOMAINS = new Set(["northwind.example", "northwind-traders.example"]);
const LICENSE = [{ skuId: "6fd2c87f-b296-42f0-b197-1e91e994b900" }];
const member = (changes: Partial<GraphUser>): GraphUser => ({
  id: "u1",
  displayName: "Anna Berg",
  mail: "anna.berg@northwind.example",
  userPrincipalName: "anna.berg@northwind.example",
  proxyAddresses: [
    "SMTP:anna.berg@northwind.example",
    "smtp:anna@northwind.example",
    "smtp:anna@northwind.onmicrosoft.com",
    "X500:/o=ExchangeLabs/ou=x/cn=Recipients/cn=anna",
    "SIP:anna.berg@northwind.example",
    "SPO:SPO_abc@SPO_tenant",
  ],
  accountEnabled: true,
  assignedLicenses: LICENSE,
  userType: "Member",
  ...changes,
});

describe("Entra ID users and groups as recipients", () => {
  it("takes SMTP: as primary and smtp: as aliases, ignores other address types and foreign domains", () => {
    expect(recordFromUser(member({}), DOMAINS)).toEqual({
      primary: "anna.berg@northwind.example",
      aliases: ["anna@northwind.example"],
      displayName: "Anna Berg",
      kind: "user",
      source: "graph",
    });
  });

  it("keeps shared mailboxes (disabled, unlicensed), drops guests, unlicensed members and removed objects", () => {
    const shared = member({
      id: "s",
      displayName: "Finance",
      mail: "finance@northwind.example",
      proxyAddresses: ["SMTP:finance@northwind.example"],
      accountEnabled: false,
      assignedLicenses: [],
    });
    expect(recordFromUser(shared, DOMAINS)?.primary).toBe("finance@northwind.example");
    expect(
      recordFromUser(
        member({ userType: "Guest", mail: "bob@partner.example", proxyAddresses: ["SMTP:bob@partner.example"] }),
        DOMAINS,
      ),
    ).toBeUndefined();
    expect(recordFromUser(member({ assignedLicenses: [] }), DOMAINS)).toBeUndefined();
    expect(recordFromUser(member({ "@removed": { reason: "changed" } }), DOMAINS)).toBeUndefined();
    expect(
      recordFromUser(member({ proxyAddresses: ["SMTP:anna@other.example"], mail: "anna@other.example" }), DOMAINS),
    ).toBeUndefined();
  });

  it("falls back to mail without SMTP proxy addresses", () => {
    expect(recordFromUser(member({ proxyAddresses: [] }), DOMAINS)).toMatchObject({
      primary: "anna.berg@northwind.example",
      aliases: [],
    });
  });

  it("takes mail-enabled groups (lists, Microsoft 365 groups) and ignores security groups without mail", () => {
    expect(
      recordFromGroup(
        {
          id: "g1",
          displayName: "Sales",
          mail: "sales@northwind.example",
          mailEnabled: true,
          proxyAddresses: ["SMTP:sales@northwind.example", "smtp:orders@northwind.example"],
        },
        DOMAINS,
      ),
    ).toEqual({
      primary: "sales@northwind.example",
      aliases: ["orders@northwind.example"],
      displayName: "Sales",
      kind: "group",
      source: "graph",
    });
    expect(
      recordFromGroup(
        { id: "g2", displayName: "VPN users", mail: null, mailEnabled: false, proxyAddresses: [] },
        DOMAINS,
      ),
    ).toBeUndefined();
  });
});

describe("the directory", () => {
  it("lets the sync win over the spreadsheet for an address both know, keeps what only the spreadsheet has, and lists people without groups", () => {
    const graph = [
      recordFromUser(member({}), DOMAINS),
      recordFromGroup(
        {
          id: "g1",
          displayName: "Sales",
          mail: "sales@northwind.example",
          mailEnabled: true,
          proxyAddresses: ["SMTP:sales@northwind.example"],
        },
        DOMAINS,
      ),
    ].filter((r) => r !== undefined);
    const csv = recordsFromStaticUsers([
      { address: "anna@northwind.example", displayName: "Old name", aliases: [] },
      {
        address: "legacy@northwind-traders.example",
        displayName: "Legacy box",
        aliases: ["old@northwind-traders.example"],
      },
    ]);
    const directory = createDirectory([...csv, ...graph]);
    expect(directory.lookup("ANNA@northwind.example")).toEqual({
      primary: "anna.berg@northwind.example",
      displayName: "Anna Berg",
      kind: "user",
    });
    expect(directory.lookup("old@northwind-traders.example")?.primary).toBe("legacy@northwind-traders.example");
    expect(directory.lookup("sales@northwind.example")?.kind).toBe("group");
    expect(directory.people().map((p) => p.displayName)).toEqual(["Anna Berg", "Legacy box"]);
    expect(directory.lookup("nobody@northwind.example")).toBeUndefined();
  });
});

describe("address index (the directory's lookup table)", () => {
  it("finds every key in any ASCII case, misses what is absent, keeps the first value", () => {
    const index = new AddressIndex<number>(20_000);
    for (let i = 0; i < 20_000; i++) expect(index.add(`User.${i}@Example.COM`, i)).toBe(true);
    expect(index.add("user.7@example.com", -1)).toBe(false);
    expect(index.size).toBe(20_000);
    for (let i = 0; i < 20_000; i += 997) {
      expect(index.get(`user.${i}@example.com`)).toBe(i);
      expect(index.get(`USER.${i}@EXAMPLE.COM`)).toBe(i);
    }
    expect(index.get("user.7@example.com")).toBe(7);
    expect(index.get("user.20000@example.com")).toBeUndefined();
    expect(index.get("user.7@example.co")).toBeUndefined();
    expect(index.get("")).toBeUndefined();
  });

  it("folds non-ASCII local parts (SMTPUTF8) as JavaScript lower-cases them", () => {
    const index = new AddressIndex<string>(2);
    index.add("Jürgen.Öz@example.com", "j");
    expect(index.get("jürgen.öz@example.com")).toBe("j");
    expect(index.get("JÜRGEN.ÖZ@EXAMPLE.COM")).toBe("j");
    expect(() => {
      index.add("a@example.com", "a");
      index.add("b@example.com", "b");
      index.add("c@example.com", "c");
    }).not.toThrow(); // sized with headroom: at least 16 slots
  });
});
