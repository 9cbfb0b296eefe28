/**
 * A client for the Exchange Online admin REST endpoint that the ExchangeOnlineManagement v3
 * module uses: `POST {endpoint}/adminapi/beta/{tenantId}/InvokeCommand` with
 * `{"CmdletInput":{"CmdletName":..., "Parameters":{...}}}`, app-only auth (Exchange.ManageAsApp).
 *
 * - Follows a redirect to a regional host itself, resending the Authorization header (fetch
 *   drops it across origins), and keeps using that host.
 * - Pages by `@odata.nextLink`; strips `@odata.*` annotations from returned objects.
 * - Retries 429 (honouring Retry-After), 502/503/504 and network errors with backoff, up to a
 *   bound; retries 401/403 and token `unauthorized_client`/`invalid_client` for a bounded
 *   time after the client is created (app, consent and role propagation take minutes).
 * - Fails with ExchangeError: HTTP status, error code, the .NET exception type from
 *   `details[].message` ("Id|Exception.Type|text"), and `notFound` whatever the status.
 */
import { type AccessToken, type ClientCredential, TokenError, requestToken } from "./token";

export interface ExchangeConnection {
  readonly tenantId: string;
  readonly clientId: string;
  readonly credential: ClientCredential;
  /** Default `https://login.microsoftonline.com`; national clouds differ. */
  readonly authorityHost?: string;
  /** Default `https://outlook.office365.com`; national clouds differ. */
  readonly endpoint?: string;
}

export interface ExchangeClientOptions {
  readonly fetch?: typeof fetch;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  /** Attempts for one request when throttled or the service is unavailable. */
  readonly maxAttempts?: number;
  /** Longest single wait, whatever Retry-After says. */
  readonly maxWaitMs?: number;
  /** How long after creation 401/403 is taken for permission propagation and retried. */
  readonly authPropagationMs?: number;
  readonly authRetryIntervalMs?: number;
}

export const DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com";
export const DEFAULT_EXCHANGE_ENDPOINT = "https://outlook.office365.com";
/** The system mailbox the module anchors app-only admin calls on. */
const ANCHOR_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}";
const MAX_ATTEMPTS = 8;
const BACKOFF_BASE_MS = 1000;
const MAX_WAIT_MS = 2 * 60 * 1000;
/** App role assignments and the Exchange Administrator role can take minutes to apply. */
const AUTH_PROPAGATION_MS = 5 * 60 * 1000;
const AUTH_RETRY_INTERVAL_MS = 15 * 1000;
const MAX_REDIRECTS = 5;
/** Renew a token this long before it expires. */
const TOKEN_REFRESH_MARGIN_MS = 5 * 60 * 1000;

export type ExoObject = Readonly<Record<string, unknown>>;

export class ExchangeError extends Error {
  constructor(
    readonly cmdlet: string,
    readonly status: number,
    readonly code: string,
    readonly exceptionType: string,
    readonly detail: string,
  ) {
    super(`${cmdlet}: ${exceptionType || code}: ${detail}`);
    this.name = "ExchangeError";
  }
  get notFound(): boolean {
    return this.exceptionType.endsWith("ManagementObjectNotFoundException");
  }
}

function stripAnnotations(object: Record<string, unknown>): ExoObject {
  return Object.fromEntries(Object.entries(object).filter(([key]) => !key.startsWith("@odata.")));
}

function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

async function errorFrom(cmdlet: string, response: Response): Promise<ExchangeError> {
  const body = (await response.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string; details?: { message?: string }[] };
  };
  const detail = body.error?.details?.find((d) => typeof d.message === "string")?.message ?? "";
  const [, , exceptionType = "", text = ""] = /^([^|]*)\|([^|]*)\|([\s\S]*)$/.exec(detail) ?? [];
  return new ExchangeError(
    cmdlet,
    response.status,
    body.error?.code ?? `http_${response.status}`,
    exceptionType,
    text || body.error?.message || response.statusText,
  );
}

export class ExchangeClient {
  private readonly fetchImpl: typeof fetch;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private readonly createdAt: number;
  private token?: AccessToken;
  private base: string;

  constructor(
    private readonly connection: ExchangeConnection,
    private readonly options: ExchangeClientOptions = {},
  ) {
    this.fetchImpl = options.fetch ?? fetch;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.now = options.now ?? Date.now;
    this.createdAt = this.now();
    this.base = (connection.endpoint ?? DEFAULT_EXCHANGE_ENDPOINT).replace(/\/+$/, "");
  }

  /** Runs one cmdlet; returns every object of every page. */
  async invoke(cmdlet: string, parameters: Readonly<Record<string, unknown>> = {}): Promise<ExoObject[]> {
    const body = JSON.stringify({ CmdletInput: { CmdletName: cmdlet, Parameters: parameters } });
    const results: ExoObject[] = [];
    let url: string | undefined = `${this.base}/adminapi/beta/${this.connection.tenantId}/InvokeCommand`;
    while (url) {
      const page = (await this.post(cmdlet, url, body)) as {
        value?: Record<string, unknown>[];
        "@odata.nextLink"?: string;
      };
      for (const object of page.value ?? []) results.push(stripAnnotations(object));
      url = page["@odata.nextLink"];
    }
    return results;
  }

  private async accessToken(): Promise<string> {
    if (!this.token || this.token.expiresAt - TOKEN_REFRESH_MARGIN_MS <= this.now()) {
      this.token = await requestToken(
        {
          authorityHost: this.connection.authorityHost ?? DEFAULT_AUTHORITY_HOST,
          tenantId: this.connection.tenantId,
          clientId: this.connection.clientId,
          credential: this.connection.credential,
          scope: "https://outlook.office365.com/.default",
        },
        this.fetchImpl,
      );
    }
    return this.token.token;
  }

  private inPropagationWindow(): boolean {
    return this.now() - this.createdAt < (this.options.authPropagationMs ?? AUTH_PROPAGATION_MS);
  }

  private async post(cmdlet: string, firstUrl: string, body: string): Promise<unknown> {
    const maxAttempts = this.options.maxAttempts ?? MAX_ATTEMPTS;
    const maxWait = this.options.maxWaitMs ?? MAX_WAIT_MS;
    let transientAttempts = 0;
    for (;;) {
      let response: Response;
      try {
        response = await this.send(firstUrl, body);
      } catch (error) {
        if (error instanceof TokenError) {
          if (["unauthorized_client", "invalid_client"].includes(error.code) && this.inPropagationWindow()) {
            await this.sleep(this.options.authRetryIntervalMs ?? AUTH_RETRY_INTERVAL_MS);
            continue;
          }
          throw error;
        }
        if (++transientAttempts >= maxAttempts)
          throw new ExchangeError(cmdlet, 0, "network", "", (error as Error).message);
        await this.sleep(Math.min(maxWait, BACKOFF_BASE_MS * 2 ** (transientAttempts - 1)));
        continue;
      }
      if (response.ok) return response.json();
      if ((response.status === 401 || response.status === 403) && this.inPropagationWindow()) {
        await response.body?.cancel();
        this.token = undefined;
        await this.sleep(this.options.authRetryIntervalMs ?? AUTH_RETRY_INTERVAL_MS);
        continue;
      }
      if ([429, 502, 503, 504].includes(response.status) && ++transientAttempts < maxAttempts) {
        const hinted = retryAfterMs(response.headers.get("retry-after"), this.now());
        await response.body?.cancel();
        await this.sleep(Math.min(maxWait, hinted ?? BACKOFF_BASE_MS * 2 ** (transientAttempts - 1)));
        continue;
      }
      throw await errorFrom(cmdlet, response);
    }
  }

  /** One POST, following redirects by hand so the Authorization header goes along. */
  private async send(firstUrl: string, body: string): Promise<Response> {
    let url = firstUrl;
    for (let redirects = 0; ; redirects++) {
      const response = await this.fetchImpl(url, {
        method: "POST",
        redirect: "manual",
        headers: {
          authorization: `Bearer ${await this.accessToken()}`,
          "content-type": "application/json; charset=utf-8",
          "x-anchormailbox": `APP:${ANCHOR_MAILBOX}@${this.connection.tenantId}`,
          prefer: "odata.maxpagesize=1000",
        },
        body,
      });
      const location = response.headers.get("location");
      if (![301, 302, 303, 307, 308].includes(response.status) || !location || redirects >= MAX_REDIRECTS)
        return response;
      await response.body?.cancel();
      const target = new URL(location, url);
      // Stay on the regional host for the rest of this client's calls.
      if (target.origin !== new URL(this.base).origin) this.base = target.origin;
      url = target.toString();
    }
  }
}
