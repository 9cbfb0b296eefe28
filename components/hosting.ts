/**
 * How the gateway runs in its Azure container: the runtime side of hosting that the
 * gatewayConfig document records (listeners, data directory, delivery TLS). The Azure
 * resources themselves (network, egress IPs, container app, storage, Key Vault) are declared
 * beside it as they are built.
 */
import type { GatewayHosting } from "./gateway-document";

/** Inside the container: SMTP on 25, HTTP on 8080, the durable share mounted at /data. */
export const CONTAINER_HOSTING: GatewayHosting = {
  smtpListen: "0.0.0.0:25",
  httpListen: "0.0.0.0:8080",
  dataDir: "/data",
  deliveryTls: "required",
};
