/** Internet delivery: MX resolution against a real DNS server on loopback, MTA-STS, and the MX walk. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMtaStsPolicies, mxMatches, parsePolicy } from "../../gateway/delivery/mta-sts-client";
import { createMxResolver } from "../../gateway/delivery/mx";
import { createRemoteDelivery } from "../../gateway/delivery/remote";
import type { SmartHostTarget } from "../../gateway/delivery/smtp-client";
import { silentLogger } from "../../gateway/log";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";

let dns: DnsServer;

beforeAll(async () => {
  dns = await startDnsServer(
    {
      "remote.example": {
        MX: [
          { exchange: "mx2.remote.example", preference: 20 },
          { exchange: "mx1.remote.example", preference: 10 },
        ],
      },
      "mx1.remote.example": { A: ["127.0.0.11"] },
      "mx2.remote.example": { A: ["127.0.0.12"] },
      "nomail.example": { MX: [{ exchange: ".", preference: 0 }] },
      "bare.example": { A: ["127.0.0.13"] },
      "_mta-sts.strict.example": { TXT: ["v=STSv1; id=20261122"] },
      "strict.example": {
        MX: [
          { exchange: "mx.strict.example", preference: 10 },
          { exchange: "evil.attacker.example", preference: 5 },
        ],
      },
      "mx.strict.example": { A: ["127.0.0.14"] },
      "evil.attacker.example": { A: ["127.0.0.66"] },
    },
    ["flaky.example"],
  );
});
afterAll(async () => dns.close());

describe("MX resolution", () => {
  it("orders MX hosts by preference, refuses a null MX and a missing domain, falls back to the domain's address, and says when to retry", async () => {
    const resolver = createMxResolver([dns.address]);
    expect(await resolver.resolve("remote.example")).toEqual({
      kind: "hosts",
      hosts: ["mx1.remote.example", "mx2.remote.example"],
    });
    expect(await resolver.resolve("nomail.example")).toMatchObject({
      kind: "permanent",
      reason: expect.stringContaining("null MX"),
    });
    expect(await resolver.resolve("nowhere.example")).toMatchObject({
      kind: "permanent",
      reason: "nowhere.example: no such domain",
    });
    expect(await resolver.resolve("bare.example")).toEqual({ kind: "hosts", hosts: ["bare.example"] });
    expect(await resolver.resolve("flaky.example")).toMatchObject({ kind: "temporary" });
    expect(await resolver.addresses("mx1.remote.example")).toEqual(["127.0.0.11"]);
  });
});

describe("MTA-STS", () => {
  it("parses policies and matches MX patterns as RFC 8461 says", () => {
    expect(
      parsePolicy(
        "version: STSv1\r\nmode: enforce\r\nmx: mx.strict.example\r\nmx: *.backup.example\r\nmax_age: 86400\r\n",
        "x",
      ),
    ).toEqual({ id: "x", mode: "enforce", mx: ["mx.strict.example", "*.backup.example"], maxAgeS: 86400 });
    expect(parsePolicy("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1", "x")).toBeUndefined();
    expect(mxMatches("*.backup.example", "mx1.backup.example")).toBe(true);
    expect(mxMatches("*.backup.example", "a.b.backup.example")).toBe(false);
    expect(mxMatches("*.backup.example", "backup.example")).toBe(false);
  });

  it("fetches once per policy id and keeps the cached policy when a refetch fails", async () => {
    let fetches = 0;
    let fail = false;
    const policies = createMtaStsPolicies({
      resolver: createMxResolver([dns.address]),
      fetchPolicy: async () => {
        fetches++;
        if (fail) throw new Error("down");
        return "version: STSv1\nmode: enforce\nmx: mx.strict.example\nmax_age: 600\n";
      },
    });
    expect((await policies.policyFor("strict.example"))?.mode).toBe("enforce");
    expect((await policies.policyFor("strict.example"))?.mode).toBe("enforce");
    expect(fetches).toBe(1);
    fail = true;
    expect(await policies.policyFor("remote.example")).toBeUndefined(); // no _mta-sts record: no policy
    expect(fetches).toBe(1);
  });
});

describe("the MX walk", () => {
  const deliveries = (replies: Record<string, string>) => {
    const tried: SmartHostTarget[] = [];
    const attempt = async (target: SmartHostTarget, envelope: { rcptTo: readonly string[] }) => {
      tried.push(target);
      const response = replies[target.host] ?? "ECONNREFUSED";
      return {
        outcomes: new Map(
          envelope.rcptTo.map((r) => [
            r,
            {
              outcome: (response.startsWith("250") ? "delivered" : "temporary") as "delivered" | "temporary",
              response,
            },
          ]),
        ),
      };
    };
    return { tried, attempt };
  };

  it("tries the next MX when one cannot be reached, opportunistic TLS without an MTA-STS policy", async () => {
    const { tried, attempt } = deliveries({ "127.0.0.12": "250 ok" });
    const resolver = createMxResolver([dns.address]);
    const deliver = createRemoteDelivery({
      resolver,
      mtaSts: createMtaStsPolicies({ resolver, fetchPolicy: async () => "" }),
      heloName: "mx.northwind.example",
      port: 25,
      log: silentLogger,
      attempt,
    });
    const result = await deliver(
      "remote.example",
      { mailFrom: "anna@northwind.example", rcptTo: ["bob@remote.example"] },
      () => undefined as never,
    );
    expect(result.outcomes.get("bob@remote.example")?.outcome).toBe("delivered");
    expect(tried.map((t) => [t.host, t.tlsServername, t.tls, t.verifyCertificate])).toEqual([
      ["127.0.0.11", "mx1.remote.example", "allow-plain", false],
      ["127.0.0.12", "mx2.remote.example", "allow-plain", false],
    ]);
  });

  it("with an enforce policy uses only the MX hosts it names, with TLS required and verified", async () => {
    const { tried, attempt } = deliveries({ "127.0.0.14": "250 ok", "127.0.0.66": "250 ok" });
    const resolver = createMxResolver([dns.address]);
    const mtaSts = createMtaStsPolicies({
      resolver,
      fetchPolicy: async () => "version: STSv1\nmode: enforce\nmx: mx.strict.example\nmax_age: 600\n",
    });
    const deliver = createRemoteDelivery({
      resolver,
      mtaSts,
      heloName: "mx.northwind.example",
      port: 25,
      log: silentLogger,
      attempt,
    });
    await deliver(
      "strict.example",
      { mailFrom: "anna@northwind.example", rcptTo: ["bob@strict.example"] },
      () => undefined as never,
    );
    expect(tried.map((t) => [t.host, t.tls, t.verifyCertificate])).toEqual([["127.0.0.14", "required", true]]);
  });

  it("bounces at once for a domain that takes no mail", async () => {
    const { attempt } = deliveries({});
    const resolver = createMxResolver([dns.address]);
    const deliver = createRemoteDelivery({
      resolver,
      mtaSts: createMtaStsPolicies({ resolver }),
      heloName: "mx.northwind.example",
      port: 25,
      log: silentLogger,
      attempt,
    });
    const result = await deliver(
      "nomail.example",
      { mailFrom: "anna@northwind.example", rcptTo: ["x@nomail.example"] },
      () => undefined as never,
    );
    expect(result.outcomes.get("x@nomail.example")).toEqual({
      outcome: "permanent",
      response: "550 5.1.2 nomail.example accepts no mail (null MX, RFC 7505)",
    });
  });
});
