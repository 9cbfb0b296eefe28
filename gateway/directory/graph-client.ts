/**
 * Microsoft Graph for directory sync: `@microsoft/microsoft-graph-client` authenticated by
 * `@azure/identity` (client secret or certificate from the gatewayConfig), against the
 * configured Graph endpoint and authority host (national clouds; MOAT_GRAPH_ENDPOINT /
 * MOAT_AUTHORITY_HOST in tests).
 *
 * Throttling: the client's retry middleware honours 429/503/504 with Retry-After, at most
 * GRAPH_MAX_RETRIES times per request, then the request fails (and so does the sync run).
 * Errors come out as GraphRequestError (status + Graph error code, never the token or the
 * credential); 410 Gone on a delta link as DeltaExpiredError, which means "start a full sync".
 */
import { ClientCertificateCredential, ClientSecretCredential, type TokenCredential } from "@azure/identity";
import { Client, GraphError, RetryHandlerOptions } from "@microsoft/microsoft-graph-client";
import { TokenCredentialAuthenticationProvider } from "@microsoft/microsoft-graph-client/authProviders/azureTokenCredentials";
import type { GatewayConfig } from "../config";

/** Retries of one request on 429/503/504 before the run fails. */
export const GRAPH_MAX_RETRIES = 4;
/** Delay before a retry when Graph gives no Retry-After (the middleware doubles it each time). */
const GRAPH_RETRY_DELAY_SECONDS = 2;
/** One page request, including its retries' waiting, may take this long. */
const GRAPH_REQUEST_TIMEOUT_MS = 120_000;

export interface GraphPage {
  readonly value: readonly Record<string, unknown>[];
  readonly "@odata.nextLink"?: string;
  readonly "@odata.deltaLink"?: string;
}

/** Reads one page: a path relative to the endpoint's /v1.0 (first request) or a nextLink/deltaLink URL. */
export type GraphPageReader = (pathOrLink: string) => Promise<GraphPage>;

export class GraphRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "GraphRequestError";
  }
}

/** The delta link is no longer valid (410 Gone): the directory must be read in full again. */
export class DeltaExpiredError extends GraphRequestError {}

export function createCredential(tenantId: string, graph: NonNullable<GatewayConfig["graph"]>): TokenCredential {
  // Instance discovery asks login.microsoftonline.com which hosts are Microsoft's; the
  // authority host here comes from our own config, so there is nothing to discover (and the
  // sovereign clouds' discovery lives elsewhere).
  const options = { authorityHost: graph.authorityHost, disableInstanceDiscovery: true };
  return "clientSecret" in graph.credential
    ? new ClientSecretCredential(tenantId, graph.clientId, graph.credential.clientSecret, options)
    : new ClientCertificateCredential(
        tenantId,
        graph.clientId,
        { certificate: `${graph.credential.privateKeyPem.trim()}\n${graph.credential.certificatePem.trim()}\n` },
        options,
      );
}

export function createGraphReader(
  tenantId: string,
  graph: NonNullable<GatewayConfig["graph"]>,
  credential: TokenCredential = createCredential(tenantId, graph),
): GraphPageReader {
  const endpoint = graph.endpoint.replace(/\/+$/, "");
  const client = Client.initWithMiddleware({
    authProvider: new TokenCredentialAuthenticationProvider(credential, { scopes: [`${endpoint}/.default`] }),
    baseUrl: `${endpoint}/`,
    defaultVersion: "v1.0",
    // The client attaches the token only to hosts it knows as Graph; the configured endpoint is one.
    customHosts: new Set([new URL(endpoint).hostname]),
  });
  return async (pathOrLink) => {
    try {
      const request = client
        .api(pathOrLink)
        .header("Prefer", "odata.maxpagesize=999")
        .middlewareOptions([new RetryHandlerOptions(GRAPH_RETRY_DELAY_SECONDS, GRAPH_MAX_RETRIES)])
        .option("signal", AbortSignal.timeout(GRAPH_REQUEST_TIMEOUT_MS));
      const page = (await request.get()) as GraphPage;
      if (!page || !Array.isArray(page.value))
        throw new GraphRequestError(200, "UnexpectedResponse", "Graph returned a page without a value array");
      return page;
    } catch (error) {
      throw toGraphRequestError(error);
    }
  };
}

function toGraphRequestError(error: unknown): GraphRequestError {
  if (error instanceof GraphRequestError) return error;
  if (error instanceof GraphError && error.statusCode > 0) {
    const code = error.code ?? "Unknown";
    const message = `Graph answered ${error.statusCode} ${code}: ${error.message}`;
    return error.statusCode === 410
      ? new DeltaExpiredError(410, code, message)
      : new GraphRequestError(error.statusCode, code, message);
  }
  // The Graph client wraps a failed token request as a GraphError with status -1.
  const err = error as Error & { code?: string | null; name?: string };
  if (error instanceof GraphError || /Credential|Authentication/.test(err.name ?? ""))
    return new GraphRequestError(0, "TokenRequestFailed", `token request failed: ${firstLine(err.message)}`);
  return new GraphRequestError(0, err.name ?? "Error", firstLine(err.message ?? String(error)));
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}
