/**
 * The Entra ID token endpoint as the test doubles need it: `POST /{tenant}/oauth2/v2.0/token`
 * with the client credentials grant, authenticated by a client secret or a certificate
 * assertion (a JWT signed RS256 or PS256, naming the key by `x5t` or `x5t#S256`; MSAL sends PS256).
 *
 * Strict like the real endpoint: wrong grant, scope, client, secret, thumbprint, signature,
 * issuer, audience or an expired assertion each get their AADSTS error in the OAuth error
 * shape (`{error, error_description, error_codes}`, HTTP 400/401). Issued tokens are opaque
 * and carry the application permissions (roles) consented for the client.
 */
import { constants, createHash, createVerify, randomUUID, X509Certificate } from "node:crypto";

export interface RegisteredClient {
  readonly clientId: string;
  readonly clientSecret?: string;
  /** PEM certificate whose key signs client assertions. */
  readonly certificatePem?: string;
  /** Application permissions with admin consent, e.g. User.Read.All. */
  readonly roles?: readonly string[];
}

export interface IssuedToken {
  readonly clientId: string;
  readonly roles: readonly string[];
  readonly expiresAtMs: number;
}

const TOKEN_LIFETIME_SECONDS = 3599;

export class EntraTokenIssuer {
  tokensIssued = 0;
  private readonly tokens = new Map<string, IssuedToken>();

  constructor(
    readonly options: {
      readonly tenantId: string;
      /** The only scope accepted, e.g. `https://graph.microsoft.com/.default`. */
      readonly scope: string;
      readonly clients: readonly RegisteredClient[];
    },
  ) {}

  get path(): string {
    return `/${this.options.tenantId}/oauth2/v2.0/token`;
  }

  /** Forgets every issued token (as after a key roll): the next request with one gets 401. */
  revokeAll(): void {
    this.tokens.clear();
  }

  /** The token behind an `Authorization` header value, if it is one this issuer gave out and still valid. */
  check(authorization: string | undefined): IssuedToken | undefined {
    const token = /^Bearer (.+)$/.exec(authorization ?? "")?.[1];
    const issued = token ? this.tokens.get(token) : undefined;
    return issued && issued.expiresAtMs > Date.now() ? issued : undefined;
  }

  /** Answers one token request: [HTTP status, JSON body]. */
  issue(form: URLSearchParams): [number, unknown] {
    const fail = (status: number, code: string, description: string): [number, unknown] => {
      const number = /^AADSTS(\d+)/.exec(description)?.[1];
      return [
        status,
        {
          error: code,
          error_description: description,
          error_codes: number ? [Number(number)] : [],
          timestamp: new Date().toISOString(),
          trace_id: randomUUID(),
          correlation_id: randomUUID(),
        },
      ];
    };
    if (form.get("grant_type") !== "client_credentials")
      return fail(400, "unsupported_grant_type", "AADSTS70003: grant_type must be client_credentials");
    if (form.get("scope") !== this.options.scope)
      return fail(400, "invalid_scope", `AADSTS70011: The provided scope ${form.get("scope")} is not valid.`);
    const client = this.options.clients.find((c) => c.clientId === form.get("client_id"));
    if (!client)
      return fail(
        400,
        "unauthorized_client",
        `AADSTS700016: Application with identifier '${form.get("client_id")}' was not found in the directory.`,
      );
    const secret = form.get("client_secret");
    const assertion = form.get("client_assertion");
    if (secret !== null) {
      if (client.clientSecret === undefined || secret !== client.clientSecret)
        return fail(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.");
    } else if (
      assertion !== null &&
      form.get("client_assertion_type") === "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ) {
      const problem = this.checkAssertion(client, assertion);
      if (problem) return fail(401, "invalid_client", problem);
    } else {
      return fail(
        400,
        "invalid_client",
        "AADSTS7000218: The request body must contain client_assertion or client_secret.",
      );
    }
    const token = randomUUID();
    this.tokens.set(token, {
      clientId: client.clientId,
      roles: [...(client.roles ?? [])],
      expiresAtMs: Date.now() + TOKEN_LIFETIME_SECONDS * 1000,
    });
    this.tokensIssued++;
    return [
      200,
      {
        token_type: "Bearer",
        expires_in: TOKEN_LIFETIME_SECONDS,
        ext_expires_in: TOKEN_LIFETIME_SECONDS,
        access_token: token,
      },
    ];
  }

  private checkAssertion(client: RegisteredClient, jwt: string): string | undefined {
    const pem = client.certificatePem;
    if (!pem) return "AADSTS700027: no certificate registered for the application";
    const [headerPart, payloadPart, signature] = jwt.split(".");
    if (!headerPart || !payloadPart || !signature) return "AADSTS50012: malformed client assertion";
    const header = JSON.parse(Buffer.from(headerPart, "base64url").toString()) as Record<string, string>;
    const payload = JSON.parse(Buffer.from(payloadPart, "base64url").toString()) as Record<string, unknown>;
    const certificate = new X509Certificate(pem);
    const sha256 = createHash("sha256").update(certificate.raw).digest("base64url");
    const sha1 = createHash("sha1").update(certificate.raw).digest("base64url");
    if (header.alg !== "RS256" && header.alg !== "PS256")
      return `AADSTS5002730: client assertion algorithm ${header.alg} is not supported`;
    if (header["x5t#S256"] !== sha256 && header.x5t !== sha1)
      return "AADSTS700027: the certificate thumbprint in the assertion does not match a registered key";
    const verified = createVerify("RSA-SHA256")
      .update(`${headerPart}.${payloadPart}`)
      .verify(
        header.alg === "PS256"
          ? { key: certificate.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
          : certificate.publicKey,
        Buffer.from(signature, "base64url"),
      );
    if (!verified) return "AADSTS700027: client assertion signature is invalid";
    if (payload.iss !== client.clientId || payload.sub !== client.clientId)
      return "AADSTS700021: iss and sub must be the client id";
    if (typeof payload.exp !== "number" || payload.exp * 1000 < Date.now())
      return "AADSTS700024: client assertion is expired";
    if (typeof payload.aud !== "string" || !payload.aud.endsWith(this.path)) return "AADSTS700022: wrong audience";
    return undefined;
  }
}
