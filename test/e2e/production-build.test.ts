/**
 * The production build: `npm run build` compiles the gateway to dist/, and the image runs it
 * with plain node (no TypeScript loader: less memory and no compiling at start). The compiled
 * gateway serves and relays, with the verdict in its own thread too (the thread then loads its
 * compiled entry, not the tsx boot file).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
});
