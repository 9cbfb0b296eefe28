/**
 * Directory sync against the Graph double over real HTTPS: the real Graph client and
 * @azure/identity credentials, delta paging, removals, expiry, throttling, failures.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { createGraphReader } from "../../gateway/directory/graph-client";
import { type DirectorySync, createDirectorySync } from "../../gateway/directory/sync";
import { silentLogger } from "../../gateway/log";
import { createDirectoryStateStore } from "../../gateway/store/directory-state";
import { GraphDouble, seedUsers } from "../doubles/graph";

const TENANT = "11111111-2222-3333-4444-555555555555";
const CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const SECRET = "test-secret-value";
const DOMAIN = "northwind.example";

let graph: GraphDouble;
let dir: string;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "moat-sync-"));
  graph = await new GraphDouble({
    tenantId: TENANT,
    clients: [{ clientId: CLIENT, clientSecret: SECRET, roles: ["User.Read.All", "GroupMember.Read.All"] }],
  }).start();
});
afterEach(async () => {
  await graph.close();
  rmSync(dir, { recursive: true, force: true });
});

type Credential = { clientSecret: string } | { certificatePem: string; privateKeyPem: string };

function makeSync(credential: string | Credential = SECRET): DirectorySync {
  return createDirectorySync({
    read: createGraphReader(TENANT, {
      clientId: CLIENT,
      credential: typeof credential === "string" ? { clientSecret: credential } : credential,
      endpoint: graph.url,
      authorityHost: graph.url,
    }),
    domains: [DOMAIN],
    staticRecords: [],
    store: createDirectoryStateStore(join(dir, "directory")),
    log: silentLogger,
  });
}

const user = (n: number, extra: Record<string, unknown> = {}) => ({
  id: `user-${n}`,
  displayName: `Person ${n}`,
  mail: `p${n}@${DOMAIN}`,
  userPrincipalName: `p${n}@${DOMAIN}`,
  proxyAddresses: [`SMTP:p${n}@${DOMAIN}`],
  accountEnabled: true,
  assignedLicenses: [{ skuId: "05e9a617-0261-4cee-bb44-138d3ef5d965" }],
  userType: "Member",
  ...extra,
});

describe("full sync", () => {
  test("reads 100,000 users page by page and resolves primaries and aliases", async () => {
    seedUsers(graph, 100_000, DOMAIN);
    const sync = makeSync();
    expect(sync.current()).toBeUndefined();
    const outcome = await sync.run();
    expect(outcome).toMatchObject({ ok: true, users: 100_000, groups: 0, modes: { users: "full", groups: "full" } });
    expect(outcome.addresses).toBe(200_000); // primary + one smtp: alias each; SIP ignored
    const pages = graph.graphRequests("users");
    expect(pages.length).toBeGreaterThan(100); // Graph caps a page at 999
    expect(pages[0]?.query.$select?.split(",")).toEqual(
      expect.arrayContaining(["proxyAddresses", "accountEnabled", "assignedLicenses", "userType", "mail"]),
    );
    const directory = sync.current();
    expect(directory?.lookup("U99999@Northwind.Example")?.primary).toBe("u99999@northwind.example");
    expect(directory?.lookup("user.4242@northwind.example")).toMatchObject({
      primary: "u4242@northwind.example",
      kind: "user",
    });
    expect(directory?.lookup("u100000@northwind.example")).toBeUndefined();
  }, 60_000);

  test("applies the recipient rules: shared mailboxes yes; guests, unlicensed members, other domains, X500/SIP no", async () => {
    graph.put(
      "users",
      user(1, {
        proxyAddresses: [
          `SMTP:p1@${DOMAIN}`,
          `smtp:first@${DOMAIN}`,
          "X500:/o=ExchangeLabs/cn=p1",
          `SIP:p1@${DOMAIN}`,
          "smtp:p1@elsewhere.example",
        ],
      }),
    );
    graph.put("users", user(2, { accountEnabled: false, assignedLicenses: [], displayName: "Shared: Accounts" })); // shared mailbox
    graph.put(
      "users",
      user(3, { userType: "Guest", mail: "guest@partner.example", proxyAddresses: [`SMTP:p3@${DOMAIN}`] }),
    );
    graph.put("users", user(4, { assignedLicenses: [] })); // enabled, unlicensed: no mailbox
    graph.put("users", user(5, { proxyAddresses: [], mail: `p5@${DOMAIN}` })); // mail only
    const sync = makeSync();
    expect((await sync.run()).ok).toBe(true);
    const d = sync.current();
    expect(d?.lookup(`first@${DOMAIN}`)?.primary).toBe(`p1@${DOMAIN}`);
    expect(d?.lookup("p1@elsewhere.example")).toBeUndefined();
    expect(d?.lookup(`p2@${DOMAIN}`)?.displayName).toBe("Shared: Accounts");
    expect(d?.lookup(`p3@${DOMAIN}`)).toBeUndefined();
    expect(d?.lookup(`p4@${DOMAIN}`)).toBeUndefined();
    expect(d?.lookup(`p5@${DOMAIN}`)).toBeDefined();
  });

  test("mail-enabled groups are recipients but not people; a security group without mail is ignored", async () => {
    graph.put("users", user(1));
    graph.put("groups", {
      id: "g-dl",
      displayName: "Sales",
      mail: `sales@${DOMAIN}`,
      mailEnabled: true,
      securityEnabled: false,
      groupTypes: [],
      proxyAddresses: [`SMTP:sales@${DOMAIN}`, `smtp:orders@${DOMAIN}`],
    });
    graph.put("groups", {
      id: "g-m365",
      displayName: "Project X",
      mail: `projectx@${DOMAIN}`,
      mailEnabled: true,
      securityEnabled: false,
      groupTypes: ["Unified"],
      proxyAddresses: [`SMTP:projectx@${DOMAIN}`, "SPO:SPO_abc@SPO_tenant"],
    });
    graph.put("groups", {
      id: "g-mesg",
      displayName: "Finance",
      mail: `finance@${DOMAIN}`,
      mailEnabled: true,
      securityEnabled: true,
      groupTypes: [],
      proxyAddresses: [`SMTP:finance@${DOMAIN}`],
    });
    graph.put("groups", {
      id: "g-sec",
      displayName: "VPN users",
      mail: null,
      mailEnabled: false,
      securityEnabled: true,
      groupTypes: [],
      proxyAddresses: [],
    });
    const sync = makeSync();
    const outcome = await sync.run();
    expect(outcome).toMatchObject({ ok: true, users: 1, groups: 3 });
    const d = sync.current();
    for (const address of ["sales", "orders", "projectx", "finance"])
      expect(d?.lookup(`${address}@${DOMAIN}`)?.kind, address).toBe("group");
    expect(d?.people().map((p) => p.primary)).toEqual([`p1@${DOMAIN}`]);
  });
});

describe("delta sync", () => {
  test("asks only for changes and applies additions, alias changes, removals and disabled accounts", async () => {
    for (let n = 1; n <= 5; n++) graph.put("users", user(n));
    graph.put("groups", {
      id: "g-dl",
      displayName: "Sales",
      mail: `sales@${DOMAIN}`,
      mailEnabled: true,
      proxyAddresses: [`SMTP:sales@${DOMAIN}`],
    });
    const sync = makeSync();
    expect((await sync.run()).ok).toBe(true);
    const before = graph.graphRequests().length;

    graph.put("users", user(6)); // new hire
    graph.update("users", "user-1", { proxyAddresses: [`SMTP:p1@${DOMAIN}`, `smtp:new.alias@${DOMAIN}`] });
    graph.remove("users", "user-2"); // deleted
    graph.update("users", "user-3", { accountEnabled: false }); // disabled but licensed: the mailbox still exists
    graph.update("users", "user-4", { userType: "Guest" }); // converted to guest
    graph.remove("groups", "g-dl", "deleted");

    const outcome = await sync.run();
    expect(outcome).toMatchObject({
      ok: true,
      modes: { users: "delta", groups: "delta" },
      changes: 6,
      users: 4,
      groups: 0,
    });
    const requests = graph.graphRequests().slice(before);
    expect(requests.every((r) => r.query.$deltatoken !== undefined)).toBe(true);
    const d = sync.current();
    expect(d?.lookup(`p6@${DOMAIN}`)).toBeDefined();
    expect(d?.lookup(`new.alias@${DOMAIN}`)?.primary).toBe(`p1@${DOMAIN}`);
    expect(d?.lookup(`p2@${DOMAIN}`)).toBeUndefined();
    expect(d?.lookup(`p3@${DOMAIN}`)).toBeDefined();
    expect(d?.lookup(`p4@${DOMAIN}`)).toBeUndefined();
    expect(d?.lookup(`sales@${DOMAIN}`)).toBeUndefined();
    expect(d?.lookup(`p5@${DOMAIN}`)).toBeDefined();

    // An alias taken away stops verifying on the next delta.
    graph.update("users", "user-1", { proxyAddresses: [`SMTP:p1@${DOMAIN}`] });
    expect((await sync.run()).changes).toBe(1);
    expect(sync.current()?.lookup(`new.alias@${DOMAIN}`)).toBeUndefined();
  });

  test("an expired delta link (410 Gone, syncStateNotFound) restarts with a full read", async () => {
    graph.put("users", user(1));
    const sync = makeSync();
    await sync.run();
    graph.expireDeltaTokens();
    graph.put("users", user(2));
    const outcome = await sync.run();
    expect(outcome).toMatchObject({ ok: true, modes: { users: "full", groups: "full" }, users: 2 });
    expect(graph.requests.some((r) => r.status === 410)).toBe(true);
  });

  test("--full ignores the saved delta links and reads everything", async () => {
    graph.put("users", user(1));
    const sync = makeSync();
    await sync.run();
    const before = graph.graphRequests().length;
    const outcome = await sync.run({ full: true });
    expect(outcome).toMatchObject({ ok: true, modes: { users: "full", groups: "full" }, changes: 1 });
    expect(
      graph
        .graphRequests()
        .slice(before)
        .some((r) => r.query.$deltatoken !== undefined),
    ).toBe(false);
  });

  test("a restart serves the saved directory at once and continues with a delta", async () => {
    graph.put("users", user(1));
    await makeSync().run();
    const restarted = makeSync();
    expect(restarted.current()?.lookup(`p1@${DOMAIN}`)).toBeDefined();
    graph.put("users", user(2));
    expect(await restarted.run()).toMatchObject({ ok: true, modes: { users: "delta" }, changes: 1, users: 2 });
  });
});

describe("failures", () => {
  test("throttling (429 and 503 with Retry-After) is waited out and the run succeeds", async () => {
    graph.put("users", user(1));
    graph.throttle = { remaining: 1, status: 429, retryAfterSeconds: 1 };
    const sync = makeSync();
    const outcome = await sync.run();
    expect(outcome.ok).toBe(true);
    graph.throttle = { remaining: 1, status: 503, retryAfterSeconds: 1 };
    graph.put("users", user(2));
    expect((await sync.run()).users).toBe(2);
    expect(graph.requests.filter((r) => r.status === 429 || r.status === 503)).toHaveLength(2);
  }, 20_000);

  test("a failed run keeps the previous directory in force and says why", async () => {
    graph.put("users", user(1));
    const sync = makeSync();
    await sync.run();
    graph.put("users", user(2));
    graph.remove("users", "user-1");
    graph.denied = 1_000; // consent revoked
    const outcome = await sync.run();
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/403 Authorization_RequestDenied/);
    expect(sync.current()?.lookup(`p1@${DOMAIN}`)).toBeDefined();
    expect(sync.current()?.lookup(`p2@${DOMAIN}`)).toBeUndefined();
    expect(sync.status()).toMatchObject({ runs: { ok: 1, failed: 1 }, lastError: expect.stringContaining("403") });

    graph.denied = 0;
    expect((await sync.run()).ok).toBe(true);
    expect(sync.current()?.lookup(`p1@${DOMAIN}`)).toBeUndefined();
    expect(sync.status().lastError).toBeUndefined();
  });

  test("a failure on the groups after the users succeeded applies nothing", async () => {
    graph.put("users", user(1));
    const sync = makeSync();
    await sync.run();
    graph.put("users", user(2));
    // the users read succeeds, then the groups read breaks
    const read = createGraphReader(TENANT, {
      clientId: CLIENT,
      credential: { clientSecret: SECRET },
      endpoint: graph.url,
      authorityHost: graph.url,
    });
    const halfBroken = createDirectorySync({
      read: (link) => (link.includes("/groups/") ? Promise.reject(new Error("connection reset")) : read(link)),
      domains: [DOMAIN],
      staticRecords: [],
      store: createDirectoryStateStore(join(dir, "directory")),
      log: silentLogger,
    });
    expect((await halfBroken.run()).ok).toBe(false);
    expect(halfBroken.current()?.lookup(`p2@${DOMAIN}`)).toBeUndefined();
    expect(makeSync().current()?.lookup(`p2@${DOMAIN}`)).toBeUndefined(); // nothing saved either
  });

  test("a wrong client secret fails with the AADSTS reason and never prints the secret", async () => {
    graph.put("users", user(1));
    const outcome = await makeSync("not-the-secret").run();
    expect(outcome.ok).toBe(false);
    expect(outcome.error).toMatch(/AADSTS7000215|invalid_client/);
    expect(outcome.error).not.toContain("not-the-secret");
  });

  test("the double refuses an unknown $select property, as Graph does", async () => {
    const read = createGraphReader(TENANT, {
      clientId: CLIENT,
      credential: { clientSecret: SECRET },
      endpoint: graph.url,
      authorityHost: graph.url,
    });
    await expect(read("/users/delta?$select=id,mailboxSettingsX")).rejects.toMatchObject({
      status: 400,
      code: "Request_BadRequest",
    });
  });

  test("runs are one at a time: concurrent requests share one run", async () => {
    seedUsers(graph, 2_000, DOMAIN);
    const sync = makeSync();
    const [a, b] = await Promise.all([sync.run(), sync.run()]);
    expect(a).toBe(b);
    expect(graph.graphRequests("users").filter((r) => r.query.$select !== undefined)).toHaveLength(1);
  });
});

test("authenticates with a certificate (client assertion) as well as a secret", async () => {
  const { makeCertificate } = await import("../helpers/tls.js");
  const cert = makeCertificate(dir, "app", "moat-gateway");
  await graph.close();
  graph = await new GraphDouble({
    tenantId: TENANT,
    clients: [{ clientId: CLIENT, certificatePem: cert.certPem, roles: ["Directory.Read.All"] }],
  }).start();
  graph.put("users", user(1));
  const sync = makeSync({ certificatePem: cert.certPem, privateKeyPem: cert.keyPem });
  expect((await sync.run()).ok).toBe(true);
  expect(graph.issuer.tokensIssued).toBe(1);
});
