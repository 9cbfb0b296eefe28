/**
 * Crash safety: every message that got a 250 is delivered after the gateway is killed with
 * SIGKILL in the middle of a burst and restarted (Postfix's rule: better twice than lost).
 * The smart host is down during the burst, so everything acknowledged is still in the queue
 * when the process dies; it comes up only after the restart.
 */
import { describe, expect, it } from "vitest";
import { freePort, startGatewayProcess, writeTestConfig, FAST_RETRY } from "../helpers/gateway-process";
import { startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

const BURST = 40;
const CLIENTS = 4;
const KILL_AFTER_ACKS = 15;
const ROUNDS = 3;

describe("crash safety", () => {
  it("delivers every acknowledged message after SIGKILL mid-burst and a restart", async () => {
    const sinkPort = await freePort();
    const { file } = writeTestConfig({
      smartHostPort: sinkPort,
      edit: (d) => ({ ...d, delivery: { ...d.delivery, retry: FAST_RETRY } }),
    });

    const first = await startGatewayProcess(["--config", file], {});
    const acknowledged = new Set<string>();
    let next = 0;
    let killed = false;
    const client = async () => {
      while (next < BURST && !killed) {
        const token = `crash-${next++}`;
        const result = await sendMail(
          first.smtpPort,
          { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
          testMessage(token),
        ).catch(() => undefined);
        if (result?.response.startsWith("250 ")) acknowledged.add(token);
        if (acknowledged.size >= KILL_AFTER_ACKS && !killed) {
          killed = true;
          first.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, client));
    await first.stop();
    expect(acknowledged.size).toBeGreaterThanOrEqual(KILL_AFTER_ACKS);

    const sink = await startSink();
    // The sink listens on a new port: point the restarted gateway at it.
    const second = await startGatewayProcess(["--config", file], { MOAT_SMART_HOST: `127.0.0.1:${sink.port}` });
    try {
      const deadline = Date.now() + 20_000;
      const subjects = () => new Set(sink.messages.map((m) => /Subject: (\S+)/.exec(m.raw)?.[1]));
      while ([...acknowledged].some((token) => !subjects().has(token)) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const delivered = subjects();
      expect([...acknowledged].filter((token) => !delivered.has(token))).toEqual([]);
      // Duplicates at most the messages in flight when the process died.
      expect(sink.messages.length - delivered.size).toBeLessThanOrEqual(CLIENTS);
    } finally {
      await second.stop();
      await sink.close();
    }
  }, 60_000);

  it("loses nothing acknowledged over repeated SIGKILLs under load while delivery runs", async () => {
    const sink = await startSink();
    const { file } = writeTestConfig({
      smartHostPort: sink.port,
      edit: (d) => ({ ...d, delivery: { ...d.delivery, retry: FAST_RETRY } }),
    });
    const acknowledged = new Set<string>();
    let sent = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const gateway = await startGatewayProcess(["--config", file], {});
        let killed = false;
        const target = acknowledged.size + KILL_AFTER_ACKS;
        const client = async () => {
          while (!killed) {
            const token = `round${round}-${sent++}`;
            const result = await sendMail(
              gateway.smtpPort,
              { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
              testMessage(token),
            ).catch(() => undefined);
            if (result?.response.startsWith("250 ")) acknowledged.add(token);
            if (acknowledged.size >= target && !killed) {
              killed = true;
              gateway.child.kill("SIGKILL");
            }
          }
        };
        await Promise.all(Array.from({ length: CLIENTS }, client));
        await gateway.stop();
      }
      const last = await startGatewayProcess(["--config", file], {});
      try {
        const subjects = () => new Set(sink.messages.map((m) => /Subject: (\S+)/.exec(m.raw)?.[1]));
        const deadline = Date.now() + 30_000;
        while ([...acknowledged].some((t) => !subjects().has(t)) && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        expect([...acknowledged].filter((t) => !subjects().has(t))).toEqual([]);
      } finally {
        await last.stop();
      }
    } finally {
      await sink.close();
    }
  }, 120_000);
});
