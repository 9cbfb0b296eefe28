/**
 * Directory sync end to end: a gateway with an Entra ID app verifies recipients against what
 * it synced from the Graph double (over HTTPS), tempfails before the first sync, shows a failed
 * sync in /healthz and /metrics, picks up `moat sync --full` run from the CLI beside it, and
 * runs a sync from the admin API for an admin token only.
 */
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { GatewayConfigInput } from "../../gateway/config";
import { parseGatewayConfig } from "../../gateway/config";
import { silentLogger } from "../../gateway/log";
import { type RunningGateway, startGateway } from "../../gateway/main";
import { newApiToken } from "../../gateway/web/auth";
import { GraphDouble } from "../doubles/graph";
import { type TestConfig, runCli, waitUntil, writeTestConfig } from "../helpers/gateway-process";
import { openRawSession } from "../helpers/raw-smtp";

const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"; // the example stack's tenant
const CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET = "e2e-client-secret";
const D = "northwind.example";
const admin = newApiToken();
const helpdesk = newApiToken();

let graph: GraphDouble;
let config: TestConfig;
let gateway: RunningGateway;

async function rcpt(address: string): Promise<string> {
  const session = await openRawSession(gateway.smtp.port);
  try {
    await session.reply();
    await session.send("EHLO client.test");
    await session.send("MAIL FROM:<sender@example.org>");
    return await session.send(`RCPT TO:<${address}>`);
  } finally {
    session.close();
  }
}

async function api(method: "GET" | "POST", path: string, token?: string, body?: unknown) {
  const response = await fetch(`http://127.0.0.1:${gateway.http.port}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  graph = await new GraphDouble({
    tenantId: TENANT,
    clients: [{ clientId: CLIENT, clientSecret: SECRET, roles: ["User.Read.All", "GroupMember.Read.All"] }],
  }).start();
  graph.put("users", {
    id: "u-anna",
    displayName: "Anna Berg",
    mail: `anna.berg@${D}`,
    proxyAddresses: [`SMTP:anna.berg@${D}`, `smtp:anna@${D}`],
    accountEnabled: true,
    assignedLicenses: [{ skuId: "sku" }],
    userType: "Member",
  });
  graph.put("groups", {
    id: "g-sales",
    displayName: "Sales",
    mail: `sales@${D}`,
    mailEnabled: true,
    securityEnabled: false,
    groupTypes: [],
    proxyAddresses: [`SMTP:sales@${D}`],
  });
  graph.put("groups", {
    id: "g-m365",
    displayName: "Project X",
    mail: `projectx@${D}`,
    mailEnabled: true,
    securityEnabled: false,
    groupTypes: ["Unified"],
    proxyAddresses: [`SMTP:projectx@${D}`],
  });
  graph.denied = 1_000; // consent not granted yet: the first sync fails
  config = writeTestConfig({
    smartHostPort: 1, // nothing is delivered in this test
    edit: (document): GatewayConfigInput => ({
      ...document,
      directory: { users: [{ address: `legacy@${D}`, displayName: "Legacy", aliases: [] }] },
      graph: { clientId: CLIENT, credential: { clientSecret: SECRET }, endpoint: graph.url, authorityHost: graph.url },
      access: {
        tokens: [
          { name: "ops", role: "admin", sha256: admin.sha256 },
          { name: "desk", role: "helpdesk", sha256: helpdesk.sha256 },
        ],
      },
    }),
  });
  const { readFileSync } = await import("node:fs");
  gateway = await startGateway(parseGatewayConfig(JSON.parse(readFileSync(config.file, "utf8"))), silentLogger);
  await waitUntil(() => (gateway.directorySync?.status().runs.failed ?? 0) > 0, "the first (failing) sync");
});

afterAll(async () => {
  await gateway?.close();
  await graph?.close();
  if (config) rmSync(config.dir, { recursive: true, force: true });
});

describe("before the first successful sync", () => {
  test("an address only Entra ID knows gets 451 (retry later), the spreadsheet's users are accepted", async () => {
    expect(await rcpt(`anna@${D}`)).toMatch(/^451 4\.3\.0/);
    expect(await rcpt(`legacy@${D}`)).toMatch(/^250/);
    expect(await rcpt("someone@other.example")).toMatch(/^554 5\.7\.1/);
  });

  test("the failure shows in /healthz and /metrics", async () => {
    const health = await api("GET", "/healthz");
    expect(health.status).toBe(200);
    expect((health.body.checks as Record<string, string>).directory).toMatch(
      /not synced yet.*last run FAILED.*403 Authorization_RequestDenied/,
    );
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
    expect(metrics).toMatch(/^moat_directory_sync_failing 1$/m);
    expect(metrics).toMatch(/^moat_directory_last_sync_timestamp_seconds 0$/m);
  });
});

describe("after a sync", () => {
  test("`moat sync --full` from the CLI fills the directory the running gateway uses", async () => {
    graph.denied = 0;
    const result = await runCli(["sync", "--config", config.file, "--full"], {
      MOAT_GRAPH_ENDPOINT: graph.url,
      MOAT_AUTHORITY_HOST: graph.url,
    });
    expect(result.stderr).not.toContain(SECRET);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/directory sync \(full\) done .*1 users \(full\), 2 groups \(full\)/);
    await waitUntil(() => gateway.directorySync?.current() !== undefined, "the gateway to load the CLI's sync", 15_000);
    expect(await rcpt(`anna@${D}`)).toMatch(/^250/);
    expect(await rcpt(`sales@${D}`)).toMatch(/^250/); // distribution list
    expect(await rcpt(`projectx@${D}`)).toMatch(/^250/); // Microsoft 365 group
    expect(await rcpt(`legacy@${D}`)).toMatch(/^250/); // spreadsheet adds to the sync
    expect(await rcpt(`nobody@${D}`)).toMatch(/^550 5\.1\.1 <nobody@northwind\.example>: Recipient address rejected/);
  });

  test("the admin API runs a sync for an admin token only", async () => {
    const anonymous = await api("POST", "/api/directory/sync", undefined, { full: false });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await api("POST", "/api/directory/sync", "moat_wrong", {})).status).toBe(401);
    const desk = await api("POST", "/api/directory/sync", helpdesk.token, {});
    expect(desk.status).toBe(403);
    expect(desk.body).toMatchObject({ error: { code: "forbidden" } });

    graph.remove("users", "u-anna");
    const run = await api("POST", "/api/directory/sync", admin.token, {});
    expect(run.status).toBe(200);
    expect(run.body).toMatchObject({ ok: true, modes: { users: "delta", groups: "delta" }, changes: 1 });
    expect(await rcpt(`anna@${D}`)).toMatch(/^550 5\.1\.1/);

    const full = await api("POST", "/api/directory/sync", admin.token, { full: true });
    expect(full.body).toMatchObject({ ok: true, modes: { users: "full", groups: "full" }, groups: 2 });
    expect((await api("POST", "/api/directory/sync", admin.token, { full: "yes" })).status).toBe(400);
  });

  test("helpdesk can look an address up and read the sync status", async () => {
    expect((await api("GET", `/api/directory/lookup?address=sales@${D}`)).status).toBe(401);
    const found = await api("GET", `/api/directory/lookup?address=Sales@${D}`, helpdesk.token);
    expect(found.body).toMatchObject({ found: true, recipient: { primary: `sales@${D}`, kind: "group" } });
    const status = await api("GET", "/api/directory", helpdesk.token);
    expect(status.body).toMatchObject({ source: "entra-id+spreadsheet", people: 1, sync: { runs: { failed: 1 } } });
    expect(status.body.sync).not.toHaveProperty("lastError"); // the last run succeeded
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.http.port}/metrics`)).text();
    expect(metrics).toMatch(/^moat_directory_sync_failing 0$/m);
  });
});
