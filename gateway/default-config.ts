/**
 * The embedded default: the example stack (`stacks/Pulumi.example.yaml`) turned into a
 * gatewayConfig document by the same loader and builder the Pulumi program uses, with local
 * hosting instead of Azure: loopback listeners, data under `.moat-data/`, and the local
 * development mailbox as smart host (plain SMTP allowed, on loopback only).
 */
import { join } from "node:path";
import { buildGatewayConfig, type GatewayHosting } from "../components/gateway-document";
import { PROJECT_DIR, loadStackFile } from "../components/stack-config";
import type { GatewayConfigInput } from "./config";

export const EMBEDDED_STACK = "example";
export const DEV_MAILBOX = { host: "127.0.0.1", port: 2526 } as const;

export const LOCAL_HOSTING: GatewayHosting = {
  smtpListen: "127.0.0.1:2525",
  httpListen: "127.0.0.1:8025",
  dataDir: join(PROJECT_DIR, ".moat-data"),
  smartHost: DEV_MAILBOX,
  deliveryTls: "allow-plain",
};

export function embeddedDefaultConfig(): GatewayConfigInput {
  return buildGatewayConfig(loadStackFile(PROJECT_DIR, EMBEDDED_STACK), LOCAL_HOSTING);
}
