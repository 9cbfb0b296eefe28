/**
 * SMTP fuzzing of the inbound listener, on a real `moat serve` process: random bytes,
 * over-long lines, malformed commands, pipelining abuse, and slow clients. Bounded: a fixed
 * seed, a fixed number of sessions, each ended by the test. The gateway must not crash, each
 * session must end with a reply or a close, memory must stay bounded, and a normal
 * transaction must still work afterwards.
 */
import { readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type GatewayProcess, type TestConfig, startGatewayProcess, writeTestConfig } from "../helpers/gateway-process";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

const SESSIONS = 120;
const SESSION_MS = 3_000;
let sink: Sink;
let config: TestConfig;
let gateway: GatewayProcess;

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const rssKb = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);

function fuzzPayload(next: () => number, kind: number): Buffer[] {
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
  switch (kind % 6) {
    case 0: // binary garbage
      return [bytes(1 + Math.floor(next() * 4096))];
    case 1: // one over-long line
      return [Buffer.from(`EHLO ${"x".repeat(20_000 + Math.floor(next() * 20_000))}\r\n`)];
    case 2: // malformed commands and bad sequences
      return [
        "MAIL FROM:<<>>\r\n",
        "RCPT TO:\r\n",
        "DATA\r\n",
        "EHLO\r\n",
        "MAIL FROM:<a@b> SIZE=-1\r\n",
        "BDAT 10\r\n",
        "\r\n\r\n",
        "QUIT\r\n",
      ].map((l) => Buffer.from(l));
    case 3: // pipelining abuse: hundreds of commands in one write
      return [
        Buffer.from(
          `EHLO fuzz.test\r\nMAIL FROM:<f@fuzz.test>\r\n${"RCPT TO:<anna.berg@northwind.example>\r\n".repeat(1500)}DATA\r\n`,
        ),
      ];
    case 4: // a body with bare CR/LF and a NUL, never terminated
      return [
        Buffer.from("EHLO fuzz.test\r\nMAIL FROM:<f@fuzz.test>\r\nRCPT TO:<anna.berg@northwind.example>\r\nDATA\r\n"),
        Buffer.concat([Buffer.from("Subject: x\r\n\r\n\rbare\ncr lf\u0000"), bytes(2000)]),
      ];
    default: // a slow client: the greeting's command a byte at a time
      return Array.from(Buffer.from("EHLO slow.test\r\n")).map((b) => Buffer.from([b]));
  }
}

/** One session: write the payload (slowly for the slow kind), report whether any reply came. */
function session(port: number, chunks: Buffer[], slow: boolean): Promise<{ replied: boolean; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let replied = false;
    let closed = false;
    socket.on("data", (d: Buffer) => {
      if (/^\d{3}[ -]/m.test(d.toString("latin1"))) replied = true;
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      closed = true;
    });
    socket.on("connect", async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) break;
        socket.write(chunk);
        if (slow) await new Promise((r) => setTimeout(r, 60));
      }
    });
    setTimeout(() => {
      socket.destroy();
      resolve({ replied, closed });
    }, SESSION_MS);
  });
}

beforeAll(async () => {
  sink = await startSink();
  config = writeTestConfig({ smartHostPort: sink.port });
  gateway = await startGatewayProcess(["--config", config.file], { MOAT_LOG_LEVEL: "error" });
});
afterAll(async () => {
  await gateway?.stop();
  await sink?.close();
  if (config) rmSync(config.dir, { recursive: true, force: true });
});

it("survives fuzzed sessions, answers every one, keeps memory bounded and still serves mail", async () => {
  const pid = gateway.child.pid ?? 0;
  const next = random(20261122);
  const before = rssKb(pid);
  const results: { replied: boolean; closed: boolean }[] = [];
  for (let batch = 0; batch < SESSIONS; batch += 15) {
    results.push(
      ...(await Promise.all(
        Array.from({ length: 15 }, (_, i) => {
          const kind = batch + i;
          return session(gateway.smtpPort, fuzzPayload(next, kind), kind % 6 === 5);
        }),
      )),
    );
  }
  expect(gateway.child.exitCode).toBeNull();
  // Every session heard at least the greeting or an error; none was left hanging without one.
  expect(results.filter((r) => !r.replied)).toEqual([]);
  expect(rssKb(pid) - before).toBeLessThan(150 * 1024);
  const normal = await sendMail(
    gateway.smtpPort,
    { from: "a@outside.example", to: ["anna.berg@northwind.example"] },
    testMessage("after the fuzz"),
  );
  expect(normal.response).toMatch(/^250 2\.0\.0 Ok: queued as/);
  await sink.waitFor(1);
}, 120_000);
