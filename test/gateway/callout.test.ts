/** Dynamic recipient verification against real SMTP peers on loopback. */
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../gateway/log";
import { createCalloutVerifier } from "../../gateway/verify/callout";
import { type Sink, startSink } from "../helpers/sink";

let sink: Sink | undefined;
afterEach(async () => {
  await sink?.close();
  sink = undefined;
});

function verifier(port: number, clock = { now: 1_000_000 }) {
  const lines: string[] = [];
  const verify = createCalloutVerifier({
    domains: ["northwind.example"],
    target: { host: "127.0.0.1", port, heloName: "mx.northwind.example", tls: "allow-plain", verifyCertificate: true },
    positiveTtlMs: 60_000,
    negativeTtlMs: 10_000,
    timeoutMs: 2_000,
    log: createLogger({ write: (line) => lines.push(line) }),
    now: () => clock.now,
  });
  return { verify, lines, clock };
}

describe("callout verification", () => {
  it("accepts what the downstream accepts, refuses what it refuses, and caches both with their own TTL", async () => {
    sink = await startSink({ mailboxes: ["anna@northwind.example"] });
    const { verify, clock } = verifier(sink.port);
    expect((await verify.verify("anna@northwind.example")).kind).toBe("accept");
    expect((await verify.verify("ghost@northwind.example")).kind).toBe("unknown");
    const asked = sink.rcptAttempts.length;
    expect((await verify.verify("ANNA@northwind.example")).kind).toBe("accept");
    expect((await verify.verify("ghost@northwind.example")).kind).toBe("unknown");
    expect(sink.rcptAttempts.length).toBe(asked); // both from the cache
    clock.now += 10_001; // the negative answer expired, the positive one not yet
    await verify.verify("ghost@northwind.example");
    await verify.verify("anna@northwind.example");
    expect(sink.rcptAttempts.slice(asked)).toEqual(["ghost@northwind.example"]);
    expect(sink.messages).toEqual([]); // a callout never sends DATA
  });

  it("shares one callout among concurrent RCPTs for the same address", async () => {
    sink = await startSink({ mailboxes: ["anna@northwind.example"] });
    const { verify } = verifier(sink.port);
    await verify.verify("ben@northwind.example"); // the first callout to the domain also checks for a catch-all
    const before = sink.rcptAttempts.length;
    await Promise.all(Array.from({ length: 5 }, () => verify.verify("anna@northwind.example")));
    expect(sink.rcptAttempts.length - before).toBe(1);
  });

  it("answers tempfail, never unknown, when the downstream cannot be asked, and caches nothing", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const { verify, lines } = verifier(port);
    const verdict = await verify.verify("anna@northwind.example");
    expect(verdict.kind).toBe("tempfail");
    expect(lines.join("\n")).toMatch(/recipient callout failed; answered 451 .*ECONNREFUSED/);
    sink = await startSink({ refuse: { "busy@northwind.example": 451 } });
    expect((await verifier(sink.port).verify.verify("busy@northwind.example")).kind).toBe("tempfail");
  });

  it("fails closed with tempfail when STARTTLS is required and not offered", async () => {
    sink = await startSink({ starttls: false });
    const verify = createCalloutVerifier({
      domains: ["northwind.example"],
      target: {
        host: "127.0.0.1",
        port: sink.port,
        heloName: "mx.northwind.example",
        tls: "required",
        verifyCertificate: true,
      },
      positiveTtlMs: 1,
      negativeTtlMs: 1,
      timeoutMs: 2000,
      log: createLogger({ write: () => undefined }),
    });
    expect(await verify.verify("anna@northwind.example")).toMatchObject({
      kind: "tempfail",
      reason: expect.stringContaining("does not offer STARTTLS"),
    });
    expect(sink.rcptAttempts).toEqual([]);
  });

  it("detects and logs a catch-all downstream", async () => {
    sink = await startSink(); // accepts every address
    const { verify, lines } = verifier(sink.port);
    expect((await verify.verify("anyone@northwind.example")).kind).toBe("accept");
    expect(verify.catchAllDomains.has("northwind.example")).toBe(true);
    expect(lines.join("\n")).toMatch(/accepts any address of this domain \(catch-all\).*domain=northwind\.example/);
    expect(sink.rcptAttempts).toEqual([
      "anyone@northwind.example",
      expect.stringMatching(/^moat-verify-[0-9a-f]{12}@northwind\.example$/),
    ]);
  });

  it("refuses other domains without asking anyone", async () => {
    sink = await startSink();
    expect((await verifier(sink.port).verify.verify("victim@gmail.com")).kind).toBe("relay-denied");
    expect(sink.rcptAttempts).toEqual([]);
  });
});
