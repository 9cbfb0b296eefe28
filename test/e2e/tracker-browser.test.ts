/**
 * The tracker as its users meet it, end to end on a real gateway:
 *
 * - a recipient's release request: a quarantined message's notice reaches the recipient's
 *   mailbox (the sink) with a signed link; opening it requests nothing, the button does; the
 *   message shows `Pending`, the helpdesk is mailed; approval delivers the original unchanged;
 * - the helpdesk in real headless Chromium (Debian's, driven by playwright-core): sign in,
 *   search a recipient, open a quarantined message, see its category and reasons, release it,
 *   and the message arrives at the sink. A screenshot is saved in test/artifacts/.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayConfigInput, parseGatewayConfig } from "../../gateway/config";
import { silentLogger } from "../../gateway/log";
import { type RunningGateway, startGateway } from "../../gateway/main";
import { hashPassword, newApiToken } from "../../gateway/web/auth";
import { type TestConfig, writeTestConfig } from "../helpers/gateway-process";
import { EXE_BYTES, message } from "../helpers/mail-fixtures";
import { type Sink, startSink } from "../helpers/sink";
import { sendMail } from "../helpers/smtp-client";

const PASSWORD = "helpdesk password for tests";
const admin = newApiToken();
let sink: Sink;
let config: TestConfig;
let gateway: RunningGateway;
let base: string;

beforeAll(async () => {
  sink = await startSink();
  config = writeTestConfig({
    smartHostPort: sink.port,
    edit: (document): GatewayConfigInput => ({
      ...document,
      releaseRequests: {
        notify: ["it-helpdesk@northwind.example"],
        linkBaseUrl: "http://127.0.0.1:1",
        linkValidDays: 14,
      },
      access: {
        tokens: [{ name: "ops", role: "admin", sha256: admin.sha256 }],
        admins: [{ name: "hank", role: "helpdesk", passwordHash: hashPassword(PASSWORD) }],
      },
    }),
  });
  gateway = await startGateway(parseGatewayConfig(JSON.parse(readFileSync(config.file, "utf8"))), silentLogger);
  base = `http://127.0.0.1:${gateway.http.port}`;
});
afterAll(async () => {
  await gateway?.close();
  await sink?.close();
  if (config) rmSync(config.dir, { recursive: true, force: true });
});

/** A message the example policy quarantines (an executable attachment). */
async function quarantined(subject: string, to: string): Promise<string> {
  const raw = message({
    subject,
    to,
    text: "please run the tool",
    attachments: [{ filename: "tool.exe", content: EXE_BYTES }],
  });
  const result = await sendMail(gateway.smtp.port, { from: "carl@partner.example", to: [to] }, raw.toString("utf8"));
  expect(result.response).toMatch(/^250 /);
  return /queued as ([0-9A-Z]+)/.exec(result.response)?.[1] ?? "";
}

const api = async (path: string, method = "GET") =>
  (await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${admin.token}` } })).json() as Promise<
    Record<string, unknown>
  >;

describe("release requests", () => {
  it("notice with a signed link, request by POST only, Pending, helpdesk told, approval delivers the original", async () => {
    const id = await quarantined("Your tool", "ben.okafor@northwind.example");
    const notice = (await sink.waitFor(1)).find((m) => m.rcptTo.includes("ben.okafor@northwind.example"));
    expect(notice?.mailFrom).toBe("");
    expect(notice?.raw).toMatch(/Subject: Message held for you: Your tool/);
    const link = /http:\/\/127\.0\.0\.1:1(\/release\/[A-Za-z0-9_.-]+)/.exec(notice?.raw ?? "")?.[1] ?? "";
    expect(link).not.toBe("");

    const page = await fetch(`${base}${link}`);
    expect(await page.text()).toContain("Request release");
    expect((await api(`/api/messages/${id}`)).status).toBe("Quarantine"); // opening the link asked for nothing
    expect((await fetch(`${base}${link.slice(0, -3)}xyz`)).status).toBe(404); // a tampered link

    const requested = await fetch(`${base}${link}`, { method: "POST", redirect: "manual" });
    expect(requested.status).toBe(303);
    expect((await api(`/api/messages/${id}`)).status).toBe("Pending");
    const told = (await sink.waitFor(2)).find((m) => m.rcptTo.includes("it-helpdesk@northwind.example"));
    expect(told?.raw).toMatch(/ben\.okafor@northwind\.example asks for the release/);

    const approved = await api(`/api/release-requests/${id}/approve`, "POST");
    expect(approved).toMatchObject({ id, state: "approved", decidedBy: "ops" });
    const delivered = (await sink.waitFor(3)).find((m) => m.raw.includes("Subject: Your tool"));
    expect(delivered?.rcptTo).toEqual(["ben.okafor@northwind.example"]);
    expect(delivered?.raw).toContain(Buffer.from(EXE_BYTES).toString("base64").slice(0, 40));
  });
});

describe("the tracker page in Chromium", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-gpu",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  }, 60_000);
  afterAll(async () => browser?.close());

  it("sign in, search a recipient, open the quarantined message, see why, release it, and it is delivered", async () => {
    const id = await quarantined("Invoice tool for Elif", "elif.yilmaz@northwind.example");
    const before = sink.messages.length;
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    expect(page.url()).toBe(`${base}/login`);
    await page.fill('input[name="name"]', "hank");
    await page.fill('input[name="password"]', PASSWORD);
    await page.click("button");
    await page.waitForURL(`${base}/`);
    await page.fill('input[name="recipient"]', "elif.yilmaz@northwind.example");
    await page.click("form.search button");
    await page.click(`a[href="/messages/${id}"]`);
    await page.waitForURL(`${base}/messages/${id}`);
    expect(await page.textContent(".category")).toBe("banned");
    expect(await page.textContent("table.reasons")).toContain("tool.exe: .exe is banned by policy");
    await page.screenshot({ path: join(__dirname, "..", "artifacts", "tracker-message.png"), fullPage: true });
    await page.click('button:has-text("Release")');
    await page.waitForURL(/done=/);
    expect(await page.textContent(".note")).toContain("Released");
    const delivered = (await sink.waitFor(before + 1)).find((m) => m.raw.includes("Subject: Invoice tool for Elif"));
    expect(delivered?.rcptTo).toEqual(["elif.yilmaz@northwind.example"]);
    await page.close();
  }, 60_000);
});
