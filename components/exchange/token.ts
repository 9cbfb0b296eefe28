/**
 * App-only tokens from Entra ID by the OAuth 2.0 client credentials grant, with a client
 * secret or a certificate (a signed JWT client assertion, RS256, `x5t#S256` header). The
 * authority host is configurable for national clouds.
 *
 * Fails with TokenError carrying Entra's error code (`invalid_client`, `unauthorized_client`
 * ...) and its AADSTS text. Never puts the secret or the assertion in a message.
 */
import { X509Certificate, createHash, createPrivateKey, createSign, randomUUID } from "node:crypto";

export type ClientCredential =
  { readonly clientSecret: string } | { readonly certificatePem: string; readonly privateKeyPem: string };

export interface TokenRequest {
  readonly authorityHost: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly credential: ClientCredential;
  readonly scope: string;
}

export interface AccessToken {
  readonly token: string;
  /** ms since epoch */
  readonly expiresAt: number;
}

export class TokenError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "TokenError";
  }
}

/** Lifetime of a client assertion; Entra accepts up to 10 minutes of clock skew around it. */
const ASSERTION_LIFETIME_S = 10 * 60;

function tokenEndpoint(request: TokenRequest): string {
  return `${request.authorityHost.replace(/\/+$/, "")}/${request.tenantId}/oauth2/v2.0/token`;
}

export function clientAssertion(
  request: TokenRequest,
  certificatePem: string,
  privateKeyPem: string,
  now = Date.now(),
): string {
  const certificate = new X509Certificate(certificatePem);
  const header = {
    alg: "RS256",
    typ: "JWT",
    "x5t#S256": createHash("sha256").update(certificate.raw).digest("base64url"),
  };
  const issuedAt = Math.floor(now / 1000);
  const payload = {
    aud: tokenEndpoint(request),
    iss: request.clientId,
    sub: request.clientId,
    jti: randomUUID(),
    nbf: issuedAt,
    iat: issuedAt,
    exp: issuedAt + ASSERTION_LIFETIME_S,
  };
  const encode = (part: object) => Buffer.from(JSON.stringify(part)).toString("base64url");
  const unsigned = `${encode(header)}.${encode(payload)}`;
  const signature = createSign("RSA-SHA256")
    .update(unsigned)
    .sign(createPrivateKey(privateKeyPem))
    .toString("base64url");
  return `${unsigned}.${signature}`;
}

export async function requestToken(request: TokenRequest, fetchImpl: typeof fetch = fetch): Promise<AccessToken> {
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: request.clientId,
    scope: request.scope,
  });
  if ("clientSecret" in request.credential) {
    form.set("client_secret", request.credential.clientSecret);
  } else {
    form.set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    form.set(
      "client_assertion",
      clientAssertion(request, request.credential.certificatePem, request.credential.privateKeyPem),
    );
  }
  const started = Date.now();
  const response = await fetchImpl(tokenEndpoint(request), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: form.toString(),
  });
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok || typeof body.access_token !== "string") {
    const code = typeof body.error === "string" ? body.error : `http_${response.status}`;
    const description =
      typeof body.error_description === "string" ? body.error_description.split("\r\n")[0] : response.statusText;
    throw new TokenError(code, `token request for ${request.scope} failed: ${code}: ${description}`, response.status);
  }
  const lifetimeS = typeof body.expires_in === "number" ? body.expires_in : Number(body.expires_in ?? 3600);
  return { token: body.access_token, expiresAt: started + lifetimeS * 1000 };
}
