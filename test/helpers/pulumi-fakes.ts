/** Values the Pulumi mocks give for provider-computed outputs; tests assert against them. */
export const FAKE_CLIENT_ID = "99999999-8888-7777-6666-555555555555";
export const FAKE_SECRET = "fake-client-secret-value-from-mocks";
/** The Exchange provisioning app's, different from the gateway app's. */
export const FAKE_EXCHANGE_CLIENT_ID = "77777777-6666-5555-4444-333333333333";
export const FAKE_EXCHANGE_SECRET = "fake-exchange-provisioning-secret";
export const FAKE_MANAGE_AS_APP_ROLE = "dc50a0fb-09a3-484d-be87-e023b12c6440";
export const FAKE_EXCHANGE_SP = "exchange-online-sp-object-id";
export const FAKE_EXCHANGE_ADMIN_TEMPLATE = "29232cdf-9323-42fd-ade2-1d097af3e4de";

export const EXCHANGE_TYPES = {
  inbound: "pulumi-nodejs:dynamic/moat:exchange:InboundConnector",
  outbound: "pulumi-nodejs:dynamic/moat:exchange:OutboundConnector",
  rule: "pulumi-nodejs:dynamic/moat:exchange:TransportRule",
} as const;
export const FAKE_USER_READ_ALL_ROLE = "df021288-bdef-4463-88db-98f22de89214";
export const FAKE_GROUP_MEMBER_READ_ALL_ROLE = "98830695-27a2-44f7-8c18-0c3ebc9698f6";
export const FAKE_GRAPH_SP = "microsoft-graph-sp-object-id";
export const FAKE_EGRESS_IP = "20.50.10.11";
export const FAKE_INBOUND_IP = "20.50.10.12";
export const FAKE_ZONE_ID = "0123456789abcdef0123456789abcdef";
export const FAKE_CERT_PEM = "-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----\n";
export const FAKE_KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIfakekey\n-----END PRIVATE KEY-----\n";

export { SECRET_SIG, SECRET_SIG_KEY } from "../../components/offline/mocks";
import { mapSecrets } from "../../components/offline/mocks";

/** The same value with every secret wrapper removed (to read what a secret holds). */
export function unwrapSecrets(value: unknown): unknown {
  return mapSecrets(value, (secret) => unwrapSecrets(secret));
}
