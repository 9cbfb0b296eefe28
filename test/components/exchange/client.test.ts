/** The Exchange admin REST client over real HTTP against the strict double. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ExchangeClient, ExchangeError } from "../../../components/exchange/client";
import { TokenError } from "../../../components/exchange/token";
import { ExchangeAdminDouble } from "../../doubles/exchange-admin";
import { makeCertificate } from "../../helpers/tls";

const TENANT = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f";
const CLIENT_ID = "0a0b0c0d-1111-2222-3333-444455556666";
const SECRET = "test-secret-not-real";

let double: ExchangeAdminDouble;
const waits: number[] = [];
const sleep = async (ms: number) => {
  waits.push(ms);
};

function client(
  overrides: Partial<ConstructorParameters<typeof ExchangeClient>[0]> = {},
  options: ConstructorParameters<typeof ExchangeClient>[1] = {},
) {
  return new ExchangeClient(
    {
      tenantId: TENANT,
      clientId: CLIENT_ID,
      credential: { clientSecret: SECRET },
      authorityHost: double.url,
      endpoint: double.url,
      ...overrides,
    },
    { sleep, authPropagationMs: 0, ...options },
  );
}

beforeEach(async () => {
  waits.length = 0;
  double = await new ExchangeAdminDouble({
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: SECRET,
    pageSize: 2,
  }).start();
});
afterEach(async () => double.close());

describe("Exchange admin REST client", () => {
  it("invokes a cmdlet with the headers the service requires and strips annotations", async () => {
    const [created] = await client().invoke("New-InboundConnector", { Name: "Moat", SenderDomains: ["*"] });
    expect(created?.Guid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(created ?? {}).some((k) => k.startsWith("@odata"))).toBe(false);
    expect(created?.SenderDomains).toEqual(["smtp:*;1"]);
  });

  it("follows @odata.nextLink across pages", async () => {
    const exchange = client();
    for (const name of ["a", "b", "c", "d", "e"])
      await exchange.invoke("New-InboundConnector", { Name: name, SenderDomains: ["*"] });
    const all = await exchange.invoke("Get-InboundConnector");
    expect(all.map((c) => c.Name)).toEqual(["a", "b", "c", "d", "e"]);
    expect(double.calls.filter((c) => c.cmdlet === "Get-InboundConnector")).toHaveLength(3);
  });

  it("types errors by exception type; not-found whatever the status", async () => {
    const exchange = client();
    const missing = await exchange
      .invoke("Set-InboundConnector", { Identity: "nope", Comment: "x" })
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ExchangeError);
    expect((missing as ExchangeError).status).toBe(400);
    expect((missing as ExchangeError).notFound).toBe(true);
    const unknown = (await exchange
      .invoke("New-InboundConnector", { Name: "x", SenderDomains: ["*"], Bogus: 1 })
      .catch((e: unknown) => e)) as ExchangeError;
    expect(unknown.exceptionType).toBe("System.Management.Automation.ParameterBindingException");
    expect(unknown.message).toBe(
      "New-InboundConnector: System.Management.Automation.ParameterBindingException: A parameter cannot be found that matches parameter name 'Bogus'.",
    );
    expect(unknown.notFound).toBe(false);
  });

  it("the double refuses what the service refuses: null Identity, Enabled on Set-TransportRule, a missing mandatory parameter", async () => {
    const exchange = client();
    const failure = async (cmdlet: string, parameters: Record<string, unknown>) =>
      ((await exchange.invoke(cmdlet, parameters).catch((e: unknown) => e)) as ExchangeError).message;
    expect(await failure("Set-InboundConnector", { Identity: null, Comment: "x" })).toBe(
      "Set-InboundConnector: System.Management.Automation.ParameterBindingValidationException: Cannot validate argument on parameter 'Identity'. The argument is null or empty.",
    );
    await exchange.invoke("New-TransportRule", { Name: "r", SetSCL: -1 });
    expect(await failure("Set-TransportRule", { Identity: "r", Enabled: false })).toMatch(
      /ParameterBindingException: A parameter cannot be found that matches parameter name 'Enabled'/,
    );
    expect(await failure("New-InboundConnector", { Name: "no domains" })).toMatch(
      /missing mandatory parameters: SenderDomains/,
    );
    expect(await failure("New-OutboundConnector", { Name: "o", UseMXRecord: false })).toMatch(
      /SmartHosts must be specified when UseMXRecord is false/,
    );
  });

  it("retries 429 honouring Retry-After, and 503 with backoff, up to a bound", async () => {
    double.throttle = { remaining: 2, retryAfterSeconds: 7 };
    double.unavailable = 1;
    await client().invoke("Get-InboundConnector");
    expect(waits).toEqual([7000, 7000, 4000]);
    double.unavailable = 10;
    const error = (await client({}, { maxAttempts: 3 })
      .invoke("Get-InboundConnector")
      .catch((e: unknown) => e)) as ExchangeError;
    expect(error.status).toBe(503);
  });

  it("retries 401 while permissions propagate, and gives up after the window", async () => {
    double.unauthorized = 2;
    await client({}, { authPropagationMs: 60_000, authRetryIntervalMs: 5 }).invoke("Get-InboundConnector");
    expect(waits).toEqual([5, 5]);
    double.unauthorized = 1;
    const error = (await client()
      .invoke("Get-InboundConnector")
      .catch((e: unknown) => e)) as ExchangeError;
    expect(error.status).toBe(401);
  });

  it("follows a redirect to a regional host, resending the token, and stays there", async () => {
    double.redirectToRegional = true;
    const exchange = client();
    await exchange.invoke("New-InboundConnector", { Name: "r", SenderDomains: ["*"] });
    await exchange.invoke("Get-InboundConnector");
    expect(double.calls.map((c) => c.host)).toEqual(["regional", "regional"]);
  });

  it("reports a bad secret with Entra's error, without the secret", async () => {
    const error = (await client({ credential: { clientSecret: "wrong-secret-value" } })
      .invoke("Get-InboundConnector")
      .catch((e: unknown) => e)) as TokenError;
    expect(error).toBeInstanceOf(TokenError);
    expect(error.code).toBe("invalid_client");
    expect(error.message).toContain("AADSTS7000215");
    expect(error.message).not.toContain("wrong-secret-value");
  });

  it("authenticates with a certificate (signed client assertion)", async () => {
    const { certPem: certificatePem, keyPem: privateKeyPem } = makeCertificate(
      mkdtempSync(join(tmpdir(), "moat-cert-")),
      "app",
      "moat-test",
    );
    await double.close();
    double = await new ExchangeAdminDouble({ tenantId: TENANT, clientId: CLIENT_ID, certificatePem }).start();
    await client({ credential: { certificatePem, privateKeyPem } }).invoke("Get-InboundConnector");
    expect(double.tokensIssued).toBe(1);
  });
});
