/**
 * The client's name (gateway/inbound/client-name.ts): a PTR name counts only when it resolves
 * back to the client's address, lookups go to the configured DNS servers (a real DNS server
 * double on loopback), and answers are cached.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClientNames, knownClientName, reverseName } from "../../gateway/inbound/client-name";
import { type DnsServer, startDnsServer } from "../helpers/dns-server";

let dns: DnsServer;

beforeAll(async () => {
  dns = await startDnsServer(
    {
      // confirmed: the PTR name's A record is the client's address
      "9.113.0.203.in-addr.arpa": { PTR: ["mail.sender.example"] },
      "mail.sender.example": { A: ["203.0.113.9"] },
      // not confirmed: anyone can put any name in the PTR of an address they control
      "66.113.0.203.in-addr.arpa": { PTR: ["mx.bigbank.example"] },
      "mx.bigbank.example": { A: ["198.51.100.1"] },
      // the second of two PTR names is the one that confirms
      "7.113.0.203.in-addr.arpa": { PTR: ["stale.sender.example", "out.sender.example"] },
      "out.sender.example": { A: ["203.0.113.7"] },
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa": { PTR: ["v6.sender.example"] }, // 2001:db8::1
      "v6.sender.example": { AAAA: ["2001:db8::1"] },
    },
    ["broken.ip.example", "5.113.0.203.in-addr.arpa"],
  );
});

afterAll(async () => {
  await dns.close();
});

describe("the client's name", () => {
  it("is the PTR name only when that name resolves back to the client's address (IPv4 and IPv6)", async () => {
    const names = createClientNames([dns.address]);
    expect(await names.nameOf("203.0.113.9")).toBe("mail.sender.example");
    expect(await names.nameOf("203.0.113.66")).toBeUndefined(); // claims a bank's name, does not resolve back
    expect(await names.nameOf("203.0.113.7")).toBe("out.sender.example");
    expect(await names.nameOf("2001:db8::1")).toBe("v6.sender.example");
    expect(await names.nameOf("203.0.113.200")).toBeUndefined(); // no PTR at all (NXDOMAIN)
    expect(await names.nameOf("203.0.113.5")).toBeUndefined(); // the DNS server fails: unknown, not an error
    expect(await names.nameOf("not-an-address")).toBeUndefined();
    expect(await names.nameOf("::ffff:203.0.113.9")).toBe("mail.sender.example"); // IPv4 on an IPv6 socket
  });

  it("asks the DNS for the PTR under the address's reverse name", () => {
    expect(reverseName("203.0.113.9")).toBe("9.113.0.203.in-addr.arpa");
    expect(reverseName("2001:db8::1")).toBe(`1.0.0.0.${"0.".repeat(20)}8.b.d.0.1.0.0.2.ip6.arpa`);
    expect(reverseName("2001:db8:1:2:3:4:5:6")).toBe(
      "6.0.0.0.5.0.0.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
    );
    expect(reverseName("::1")).toBe(`1.${"0.".repeat(31)}ip6.arpa`);
  });

  it("hands smtp-server the name, or none for an unknown client", async () => {
    const names = createClientNames([dns.address]);
    const answer = (ip: string) =>
      new Promise<string[]>((resolve, reject) =>
        names.reverse(ip, (error, hostnames) => (error ? reject(error) : resolve(hostnames))),
      );
    expect(await answer("203.0.113.9")).toEqual(["mail.sender.example"]);
    expect(await answer("203.0.113.66")).toEqual([]);
    // smtp-server writes `[ip]` for a client without a name: that is no name
    expect(knownClientName("[203.0.113.66]")).toBeUndefined();
    expect(knownClientName("mail.sender.example")).toBe("mail.sender.example");
  });

  it("asks the DNS once per address while the answer is kept, shared by concurrent connections", async () => {
    let clock = 1_000_000;
    const names = createClientNames([dns.address], () => clock);
    const ptrQueries = () => dns.queries.filter((q) => q === "PTR 9.113.0.203.in-addr.arpa").length;
    const before = ptrQueries();
    const answers = await Promise.all([1, 2, 3, 4, 5].map(() => names.nameOf("203.0.113.9")));
    expect(answers).toEqual(Array(5).fill("mail.sender.example"));
    await names.nameOf("203.0.113.9");
    expect(ptrQueries() - before).toBe(1);
    clock += 61_000; // past the minute an answer is kept
    expect(await names.nameOf("203.0.113.9")).toBe("mail.sender.example");
    expect(ptrQueries() - before).toBe(2);
  });
});
