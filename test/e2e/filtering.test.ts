/**
 * Filtering in the mail path, against real rspamd and clamd from Debian: each verdict's action
 * as the sender and the tenant see it — delivered with Authentication-Results, quarantined
 * (kept, not delivered), deleted (250, nothing delivered), rejected (550 in the session), a
 * block rule, and an engine that is down (451, nothing kept) — and what the tracker records.
 * Also `moat scan` on saved messages, with the same engines.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayConfigInput, parseGatewayConfig } from "../../gateway/config";
import { silentLogger } from "../../gateway/log";
import { type RunningGateway, startGateway } from "../../gateway/main";
import { openSqliteTracker } from "../../gateway/store/tracker";
import { parseMessage } from "../../gateway/filters/message";
import { createRspamdFilter } from "../../gateway/filters/rspamd";
import { bufferSource } from "../../gateway/filters/source";
import { EICAR, type Engine, startClamd, startRspamd } from "../helpers/engines";
import { type TestConfig, queueFiles, runCli, writeTestConfig } from "../helpers/gateway-process";
import { EXE_BYTES, message } from "../helpers/mail-fixtures";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail } from "../helpers/smtp-client";

const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
let rspamd: Engine & { url: string };
let clamd: Engine & { host: string; port: number };
let sink: Sink;
let config: TestConfig;
let gateway: RunningGateway;

beforeAll(async () => {
  [rspamd, sink] = await Promise.all([startRspamd(), startSink()]);
}, 180_000);

afterAll(async () => {
  await Promise.all([rspamd?.stop(), sink?.close()]);
});

/** A gateway with both engines, the verdict in the SMTP thread or in its own (`filters.scanThread`). */
async function startFilteringGateway(scanThread: boolean) {
  clamd = await startClamd();
  sink.messages.length = 0;
  config = writeTestConfig({
    smartHostPort: sink.port,
    edit: (document): GatewayConfigInput => ({
      ...document,
      policy: { ...document.policy, malware: "reject", infomail: "delete" },
      filters: {
        rspamdUrl: rspamd.url,
        clamd: { host: clamd.host, port: clamd.port },
        onEngineFailure: "tempfail",
        scanThread,
      },
    }),
  });
  gateway = await startGateway(parseGatewayConfig(JSON.parse(readFileSync(config.file, "utf8"))), silentLogger);
}

async function stopFilteringGateway() {
  await gateway?.close();
  await clamd?.stop();
  if (config) rmSync(config.dir, { recursive: true, force: true });
}

const send = (raw: Buffer, from = "carl@partner.example") =>
  sendMail(gateway.smtp.port, { from, to: ["anna.berg@northwind.example"] }, raw.toString("utf8"));
const queuedId = (response: string) => /queued as ([0-9A-Z]+)/.exec(response)?.[1] ?? "";

async function story(id: string) {
  const tracker = await openSqliteTracker(join(config.dataDir, "tracker.sqlite"));
  try {
    return await tracker.story(id);
  } finally {
    await tracker.close();
  }
}

describe.each([
  ["in the SMTP thread", false],
  ["in a thread of its own (filters.scanThread)", true],
])("verdicts in the mail path, the verdict %s", (_, scanThread) => {
  beforeAll(() => startFilteringGateway(scanThread), 180_000);
  afterAll(stopFilteringGateway);

  it("delivers clean mail with Authentication-Results and rspamd's score on record", async () => {
    const result = await send(
      message({ subject: "Meeting notes", text: "Hi Anna,\r\n\r\nthe notes from Tuesday are below.\r\n\r\nCarl" }),
    );
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as/);
    await sink.waitFor(1);
    expect(sink.messages[0]?.raw).toMatch(/Authentication-Results: mx\.northwind\.example;/);
    const record = await story(queuedId(result.response));
    expect(record?.category).toBeNull();
    expect(JSON.stringify(record?.reasons)).toMatch(/rspamd score/);
  });

  it("quarantines spam (GTUBE): 250 to the sender, kept in quarantine/, never delivered", async () => {
    const result = await send(message({ subject: "Cheap stuff", text: `Buy now!\r\n${GTUBE}\r\n` }));
    expect(result.response).toMatch(/^250 /);
    const id = queuedId(result.response);
    expect(queueFiles(config.dataDir, "quarantine")).toContain(id);
    const record = await story(id);
    expect(record).toMatchObject({ status: "Quarantine", category: "spam" });
    expect(JSON.stringify(record?.reasons)).toMatch(/rspamd score 15 of 15 \(reject\): Gtube pattern/);
  });

  it("rejects malware found by clamd with 550 in the session and records why", async () => {
    const result = await send(
      message({
        subject: "invoice",
        text: "see attached",
        attachments: [{ filename: "invoice.txt", content: Buffer.from(EICAR) }],
      }),
    );
    expect(result.responseCode).toBe(550);
    expect(result.response).toMatch(/^550 5\.7\.1 Message rejected as malware \(([0-9A-Z]+)\)/);
    const id = /\(([0-9A-Z]+)\)/.exec(result.response)?.[1] ?? "";
    expect(await story(id)).toMatchObject({ status: "Reject", category: "malware" });
    expect(JSON.stringify((await story(id))?.reasons)).toMatch(/Moat\.Test\.EICAR/);
  });

  it("quarantines a banned attachment, deletes infomail by policy", async () => {
    const banned = await send(
      message({ text: "run this", attachments: [{ filename: "tool.pdf", content: EXE_BYTES }] }),
    );
    expect(await story(queuedId(banned.response))).toMatchObject({ status: "Quarantine", category: "banned" });
    const newsletter = await send(
      message({
        from: "Contoso <news@contoso.example>",
        headers: {
          "List-Unsubscribe": "<https://contoso.example/u>",
          "List-Id": "<news.contoso.example>",
          Precedence: "bulk",
        },
        html: '<p>Spring sale</p><a href="https://contoso.example/unsubscribe">unsubscribe</a>',
      }),
      "news@contoso.example",
    );
    expect(newsletter.response).toMatch(/^250 /);
    const id = queuedId(newsletter.response);
    expect(await story(id)).toMatchObject({ status: "Delete", category: "infomail" });
    for (const state of ["incoming", "deferred", "quarantine", "hold"] as const)
      expect(queueFiles(config.dataDir, state)).not.toContain(id);
  });

  it("applies the example stack's block rule (customer rules CSV) with its file and line", async () => {
    const result = await send(message({ from: "AP <ap@fabrikam-invoices.example>" }), "ap@fabrikam-invoices.example");
    expect(result.response).toMatch(/^550 5\.7\.1 Message rejected by a block rule/);
    const id = /\(([0-9A-Z]+)\)/.exec(result.response)?.[1] ?? "";
    expect(await story(id)).toMatchObject({ status: "Reject", rule: "customer block rule stacks/example/rules.csv:4" });
  });

  it("answers 451 and keeps nothing while an engine is down", async () => {
    await clamd.stop();
    const before = sink.messages.length;
    const result = await send(message({ subject: "while clamd is down" }));
    expect(result.response).toMatch(/^451 4\.7\.1 Message could not be scanned/);
    expect(queueFiles(config.dataDir, "incoming")).toEqual([]);
    expect(sink.messages.length).toBe(before);
  });
});

describe("rspamd and the client's name", () => {
  it("gets the client's confirmed name, and none for an unknown client (never the gateway's own)", async () => {
    const raw = message({ subject: "quarterly numbers", text: "See you on Friday." });
    const filter = createRspamdFilter({ url: rspamd.url });
    const detail = async (clientName?: string) => {
      const result = await filter.run({
        mailFrom: "carl@partner.example",
        rcptTo: ["anna.berg@northwind.example"],
        clientIp: "203.0.113.9", // not local: rspamd's reverse-DNS rules skip loopback clients
        ...(clientName ? { clientName } : {}),
        helo: "mail.partner.example",
        tls: false,
        direction: "inbound",
        source: bufferSource(raw),
        domains: new Set(["northwind.example"]),
        parsed: await parseMessage(bufferSource(raw)),
      });
      return result.findings.map((f) => f.detail).join(" ");
    };
    expect(await detail()).toMatch(/HFILTER_HOSTNAME_UNKNOWN/);
    expect(await detail("mail.partner.example")).not.toMatch(/HFILTER_HOSTNAME_UNKNOWN|RDNS_/);
  });
});

describe("moat scan", () => {
  beforeAll(() => {
    config = writeTestConfig({ smartHostPort: sink.port });
  });
  afterAll(() => rmSync(config.dir, { recursive: true, force: true }));

  it("prints one JSON verdict per message without delivering", async () => {
    const spam = join(config.dir, "spam.eml");
    const ham = join(config.dir, "ham.eml");
    writeFileSync(spam, message({ subject: "offer", text: `${GTUBE}\r\n` }));
    writeFileSync(ham, message({ subject: "lunch", text: "Lunch on Friday?\r\n\r\nCarl" }));
    // A config without engines; the environment points it at rspamd (as on Azure).
    const scanConfig = writeTestConfig({ smartHostPort: sink.port });
    const result = await runCli(["scan", "--config", scanConfig.file, spam, ham, join(config.dir, "missing.eml")], {
      MOAT_RSPAMD_URL: rspamd.url,
    });
    rmSync(scanConfig.dir, { recursive: true, force: true });
    const lines = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ file: spam, category: "spam", action: "quarantine", rule: null });
    expect(lines[1]).toMatchObject({ file: ham, category: "clean", action: "deliver" });
    expect(lines[2]).toMatchObject({ file: join(config.dir, "missing.eml"), error: expect.stringMatching(/ENOENT/) });
    expect(result.code).toBe(1); // one file could not be read
    expect(sink.messages.every((m) => !m.raw.includes("Subject: offer"))).toBe(true);
  });
});
