import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { createSessionLimits, recentTimes } from "../../gateway/inbound/limits";
import { startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("per-client limits", () => {
  it("counts sessions and the per-minute windows per IP, and forgets idle clients", () => {
    const clock = { now: 0 };
    const limits = createSessionLimits(
      { maxConnectionsPerIp: 2, connectionsPerMinutePerIp: 3, messagesPerMinutePerIp: 2 },
      () => clock.now,
    );
    expect(limits.admitSession("a", "192.0.2.1")).toBeUndefined();
    expect(limits.admitSession("b", "192.0.2.1")).toBeUndefined();
    expect(limits.admitSession("c", "192.0.2.1")?.message).toBe(
      "4.7.0 Error: too many connections from 192.0.2.1; try again later",
    );
    expect(limits.admitSession("d", "192.0.2.2")).toBeUndefined(); // another client is not affected
    limits.releaseSession("c"); // refused, never counted: no effect
    limits.releaseSession("a");
    expect(limits.admitSession("e", "192.0.2.1")).toBeUndefined();
    limits.releaseSession("e");
    expect(limits.admitSession("f", "192.0.2.1")?.responseCode).toBe(421); // 3 connects within the minute
    clock.now += 60_001;
    expect(limits.admitSession("g", "192.0.2.1")).toBeUndefined();
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined();
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined();
    expect(limits.admitMessage("192.0.2.1")?.message).toBe(
      "4.7.1 Error: too many messages from 192.0.2.1 in the last minute; try again later",
    );
    for (const id of ["b", "d", "g"]) limits.releaseSession(id);
    clock.now += 60_001;
    limits.admitSession("h", "192.0.2.3");
    limits.releaseSession("h");
    expect(limits.trackedClients).toBe(1); // only the client seen in this minute
  });

  it("slides the message window: a message counts for one minute after it was admitted, then no longer", () => {
    const clock = { now: 0 };
    const limits = createSessionLimits(
      { maxConnectionsPerIp: 10, connectionsPerMinutePerIp: 10, messagesPerMinutePerIp: 2 },
      () => clock.now,
    );
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined(); // t = 0
    clock.now = 30_000;
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined(); // t = 30 s
    clock.now = 59_999;
    expect(limits.admitMessage("192.0.2.1")?.responseCode).toBe(451); // the first still counts
    clock.now = 60_000;
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined(); // the first has expired, not the second
    expect(limits.admitMessage("192.0.2.1")?.responseCode).toBe(451);
    clock.now = 90_000;
    expect(limits.admitMessage("192.0.2.1")).toBeUndefined();
  });

  it("keeps a busy client's minute exact over thousands of events, as a plain count of the last minute would", () => {
    // Enough events that the expired times are cut off the front many times (limits.ts).
    const clock = { now: 0 };
    const settings = {
      maxConnectionsPerIp: 1_000_000,
      connectionsPerMinutePerIp: 4_000,
      messagesPerMinutePerIp: 3_000,
    };
    const limits = createSessionLimits(settings, () => clock.now);
    const admitted = { connects: [] as number[], messages: [] as number[] };
    const inLastMinute = (times: number[]) => times.filter((t) => t > clock.now - 60_000).length;
    const decisions = { connects: 0, messages: 0, refused: 0 };
    for (let i = 0; i < 15_000; i++) {
      clock.now = i * 10 + (i % 7); // 100 a second, unevenly
      const session = `s${i}`;
      const connectExpected = inLastMinute(admitted.connects) < settings.connectionsPerMinutePerIp;
      expect(limits.admitSession(session, "192.0.2.9") === undefined).toBe(connectExpected);
      if (!connectExpected) {
        decisions.refused++;
        continue;
      }
      admitted.connects.push(clock.now);
      decisions.connects++;
      const messageExpected = inLastMinute(admitted.messages) < settings.messagesPerMinutePerIp;
      expect(limits.admitMessage("192.0.2.9") === undefined).toBe(messageExpected);
      if (messageExpected) {
        admitted.messages.push(clock.now);
        decisions.messages++;
      } else decisions.refused++;
      limits.releaseSession(session);
    }
    // Both limits were reached and both windows slid: some of each refused, most admitted.
    expect(decisions.refused).toBeGreaterThan(1_000);
    expect(decisions.messages).toBeGreaterThan(7_000);
    expect(decisions.connects).toBeGreaterThan(decisions.messages);
  });

  it("counts a client's recent times exactly while the expired ones are cut off the front", () => {
    const recent = recentTimes();
    const model: number[] = [];
    let now = 0;
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 40_000; i++) {
      now += Math.floor(random() * 6); // bursts (several at one time) and gaps
      recent.add(now);
      model.push(now);
      const since = now - Math.floor(random() * 20_000); // windows of different lengths
      recent.expire(since);
      while (model.length > 0 && (model[0] ?? 0) <= since) model.shift();
      expect(recent.count).toBe(model.length);
    }
  });

  it("the listener answers 421 to one connection too many and 451 to one message too many", async () => {
    const { file } = writeTestConfig({
      smartHostPort: 9,
      edit: (d) => ({
        ...d,
        smtp: {
          ...d.smtp,
          limits: {
            maxConnections: 50,
            maxConnectionsPerIp: 2,
            connectionsPerMinutePerIp: 100,
            messagesPerMinutePerIp: 2,
          },
        },
      }),
    });
    const gateway = await startGatewayProcess(["--config", file], {});
    const greeting = (socket: ReturnType<typeof connect>) =>
      new Promise<string>((resolve) => socket.once("data", (d: Buffer) => resolve(d.toString())));
    const open = () => connect(gateway.smtpPort, "127.0.0.1");
    const held = [open(), open()];
    try {
      await Promise.all(held.map(greeting));
      const third = open();
      expect(await greeting(third)).toMatch(
        /^421 4\.7\.0 Error: too many connections from 127\.0\.0\.1; try again later/,
      );
      third.destroy();
      for (const socket of held) socket.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const results = [];
      for (let i = 0; i < 3; i++)
        results.push(
          await sendMail(
            gateway.smtpPort,
            { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
            testMessage(`limit ${i}`),
          ),
        );
      expect(results.map((r) => r.response.slice(0, 3))).toEqual(["250", "250", "451"]);
      expect(results[2]?.response).toContain("4.7.1 Error: too many messages from 127.0.0.1 in the last minute");
    } finally {
      for (const socket of held) socket.destroy();
      await gateway.stop();
    }
  });
});
