/**
 * The production build: `npm run build` compiles the gateway to dist/, and the image runs it
 * with plain node (no TypeScript loader: less memory and no compiling at start). The compiled
 * gateway serves and relays, with the verdict in its own thread too (the thread then loads its
 * compiled entry, not the tsx boot file), and that thread loads no code it never runs.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseGatewayConfig } from "../../gateway/config";
import { embeddedDefaultConfig } from "../../gateway/default-config";
import {
  type GatewayProcess,
  ROOT,
  compiledGateway,
  startGatewayProcess,
  writeTestConfig,
} from "../helpers/gateway-process";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail, testMessage } from "../helpers/smtp-client";

describe("the compiled gateway (npm run build)", () => {
  let sink: Sink;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    const cli = compiledGateway();
    sink = await startSink();
    const { file } = writeTestConfig({
      smartHostPort: sink.port,
      deliveryTls: "allow-plain",
      edit: (d) => ({ ...d, filters: { ...d.filters, scanThread: true } }),
    });
    gateway = await startGatewayProcess(["--config", file], {}, cli);
  }, 120_000);
  afterAll(async () => {
    expect(await gateway?.stop()).toBe(0);
    await sink?.close();
  });

  it("runs with plain node, judges in its thread and delivers", async () => {
    expect(existsSync(join(ROOT, "dist", "gateway", "filters", "scan-thread.js"))).toBe(true);
    expect(gateway.child.spawnargs).not.toContain("tsx");
    const result = await sendMail(
      gateway.smtpPort,
      { from: "sender@outside.example", to: ["anna.berg@northwind.example"] },
      testMessage("compiled"),
    );
    expect(result.response).toMatch(/^250 2\.0\.0 Ok: queued as /);
    const [delivered] = await sink.waitFor(1);
    expect(delivered?.rcptTo).toEqual(["anna.berg@northwind.example"]);
    expect(delivered?.raw).toMatch(/^Authentication-Results: mx\.northwind\.example;/m); // the verdict ran
  });

  it("keeps zod and mailauth's BIMI code (undici, X.509, XML) out of the verdict's thread", async () => {
    // Each would cost the thread memory for code it never runs (names.ts, mailauth-without-bimi.ts).
    const config = parseGatewayConfig({ ...embeddedDefaultConfig(), dataDir: mkdtempSync(join(tmpdir(), "moat-")) });
    const entry = join(ROOT, "dist", "gateway", "filters", "scan-thread.js");
    const thread = new Worker(
      `require(${JSON.stringify(entry)});
       require("node:worker_threads").parentPort.postMessage({ loaded: Object.keys(require.cache) });`,
      { eval: true, workerData: { config } },
    );
    try {
      const { loaded } = await new Promise<{ loaded: string[] }>((resolve, reject) => {
        thread.once("message", resolve);
        thread.once("error", reject);
      });
      expect(loaded).toContain(entry);
      expect(loaded.some((file) => file.includes("/node_modules/mailauth/lib/spf/"))).toBe(true);
      const unwanted = /\/node_modules\/(zod|undici|@postalsys\/vmc|asn1js|@peculiar|fast-xml-parser)\//;
      expect(loaded.filter((file) => unwanted.test(file))).toEqual([]);
    } finally {
      await thread.terminate();
    }
  });
});
