/**
 * AzureHosting: the gateway on Azure Container Apps.
 *
 * - Inbound: a VNet-integrated Container Apps environment; the app's TCP ingress exposes
 *   port 25 (to the container's 2525: it runs as a non-root user) and HTTP 80 (to 8080, for
 *   health and the MTA-STS policy behind Cloudflare). The environment's static IP is the
 *   stable inbound address (the gateway host's A record).
 * - Egress: the environment's subnet goes out through a NAT gateway with one Standard static
 *   public IP, the stable egress address that the Exchange lock-down connector, Enhanced
 *   Filtering and SPF name. Azure blocks outbound TCP 25 on most subscriptions; the stack
 *   refuses to deploy unless `moat:gateway.port25Unblocked` says the subscription may send on
 *   25 (Enterprise Agreement / MCA-E with the block lifted), since the gateway must deliver to
 *   Exchange Online on 25 from the IP the lock-down connector trusts — a third-party relay
 *   would break that trust.
 * - rspamd and clamd run beside the gateway in the same replica (localhost).
 * - /data is an Azure Files share (SQLite needs `nobrl` on SMB); one replica, since the
 *   embedded SQLite store is single-writer.
 * - MOAT_CONFIG comes from the gatewayConfig stack output through a Key Vault secret read with
 *   a user-assigned identity; logs go to Log Analytics.
 */
import * as app from "@pulumi/azure-native/app";
import * as authorization from "@pulumi/azure-native/authorization";
import * as keyvault from "@pulumi/azure-native/keyvault";
import * as managedidentity from "@pulumi/azure-native/managedidentity";
import * as network from "@pulumi/azure-native/network";
import * as operationalinsights from "@pulumi/azure-native/operationalinsights";
import * as resources from "@pulumi/azure-native/resources";
import * as storage from "@pulumi/azure-native/storage";
import * as pulumi from "@pulumi/pulumi";
import type { GatewayHosting } from "./gateway-document";

/** Inside the container: non-root, so unprivileged ports; the ingress maps 25 and 80 to them. */
export const CONTAINER_SMTP_PORT = 2525;
export const CONTAINER_HTTP_PORT = 8080;
export const CONTAINER_DATA_DIR = "/data";
/** Where a Key Vault certificate (PEM: key and certificate in one file) is mounted. */
export const CONTAINER_TLS_DIR = "/run/moat-tls";
export const CONTAINER_TLS_FILE = `${CONTAINER_TLS_DIR}/tls.pem`;
export const CONTAINER_HOSTING: GatewayHosting = {
  smtpListen: `0.0.0.0:${CONTAINER_SMTP_PORT}`,
  httpListen: `0.0.0.0:${CONTAINER_HTTP_PORT}`,
  dataDir: CONTAINER_DATA_DIR,
  deliveryTls: "required",
  engines: { rspamdUrl: "http://127.0.0.1:11333", clamd: { host: "127.0.0.1", port: 3310 } },
};

/** Built-in role "Key Vault Secrets User". */
const KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6";
const VNET_PREFIX = "10.40.0.0/16";
/** Container Apps with workload profiles need at least a /27 for the environment. */
const ENVIRONMENT_SUBNET_PREFIX = "10.40.0.0/23";
const LOG_RETENTION_DAYS = 30;
const DATA_SHARE_GIB = 100;

export interface AzureHostingArgs {
  readonly customer: string;
  readonly tenantId: string;
  readonly location: string;
  readonly image: string;
  readonly rspamdImage: string;
  readonly clamavImage: string;
  /** The gateway container's vCPUs (moat:gateway.cpu), each with 2 GiB. */
  readonly cpu: 1 | 2 | 3;
  /** The gatewayConfig document (secret). */
  readonly gatewayConfig: pulumi.Input<unknown>;
  /** Key Vault certificate (in this vault) for STARTTLS, mounted as a PEM file (CONTAINER_TLS_FILE). */
  readonly tlsCertificate?: string;
}

export class AzureHosting extends pulumi.ComponentResource {
  readonly inboundIp: pulumi.Output<string>;
  readonly egressIps: pulumi.Output<string[]>;
  readonly containerApp: app.ContainerApp;

  constructor(name: string, args: AzureHostingArgs, opts?: pulumi.ComponentResourceOptions) {
    super("moat:hosting:AzureHosting", name, {}, opts);
    if (!/^[a-z0-9-]{1,40}$/.test(args.customer))
      throw new Error(`${name}: customer must be 1 to 40 lower-case letters, digits or dashes`);
    const parent = { parent: this };
    const location = args.location;
    const group = new resources.ResourceGroup(`${name}-rg`, { location }, parent);
    const resourceGroupName = group.name;

    const egressIp = new network.PublicIPAddress(
      `${name}-egress-ip`,
      { resourceGroupName, location, sku: { name: "Standard" }, publicIPAllocationMethod: "Static" },
      parent,
    );
    const nat = new network.NatGateway(
      `${name}-nat`,
      { resourceGroupName, location, sku: { name: "Standard" }, publicIpAddresses: [{ id: egressIp.id }] },
      parent,
    );
    const vnet = new network.VirtualNetwork(
      `${name}-vnet`,
      { resourceGroupName, location, addressSpace: { addressPrefixes: [VNET_PREFIX] } },
      parent,
    );
    const subnet = new network.Subnet(
      `${name}-environment-subnet`,
      {
        resourceGroupName,
        virtualNetworkName: vnet.name,
        addressPrefix: ENVIRONMENT_SUBNET_PREFIX,
        delegations: [{ name: "container-apps", serviceName: "Microsoft.App/environments" }],
        natGateway: { id: nat.id },
      },
      parent,
    );

    const logs = new operationalinsights.Workspace(
      `${name}-logs`,
      { resourceGroupName, location, sku: { name: "PerGB2018" }, retentionInDays: LOG_RETENTION_DAYS },
      parent,
    );
    const logKeys = operationalinsights.getSharedKeysOutput({ resourceGroupName, workspaceName: logs.name }, parent);

    const account = new storage.StorageAccount(
      `${name}-data`,
      {
        resourceGroupName,
        location,
        kind: "StorageV2",
        sku: { name: "Standard_ZRS" },
        minimumTlsVersion: "TLS1_2",
        allowBlobPublicAccess: false,
      },
      parent,
    );
    const share = new storage.FileShare(
      `${name}-data-share`,
      { resourceGroupName, accountName: account.name, shareQuota: DATA_SHARE_GIB },
      parent,
    );
    const accountKey = storage
      .listStorageAccountKeysOutput({ resourceGroupName, accountName: account.name }, parent)
      .apply((keys) => pulumi.secret(keys.keys[0]?.value ?? ""));

    const identity = new managedidentity.UserAssignedIdentity(
      `${name}-identity`,
      { resourceGroupName, location },
      parent,
    );
    const vault = new keyvault.Vault(
      `${name}-vault`,
      {
        resourceGroupName,
        location,
        properties: {
          tenantId: args.tenantId,
          sku: { family: "A", name: "standard" },
          enableRbacAuthorization: true,
          enableSoftDelete: true,
        },
      },
      parent,
    );
    const configSecret = new keyvault.Secret(
      `${name}-gateway-config`,
      {
        resourceGroupName,
        vaultName: vault.name,
        secretName: "gateway-config",
        properties: {
          value: pulumi.secret(
            pulumi.output(args.gatewayConfig as pulumi.Input<object>).apply((document) => JSON.stringify(document)),
          ),
          contentType: "application/json",
        },
      },
      parent,
    );
    const subscriptionId = authorization.getClientConfigOutput(parent).subscriptionId;
    const canRead = new authorization.RoleAssignment(
      `${name}-identity-reads-secrets`,
      {
        principalId: identity.principalId,
        principalType: "ServicePrincipal",
        roleDefinitionId: pulumi.interpolate`/subscriptions/${subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/${KEY_VAULT_SECRETS_USER}`,
        scope: vault.id,
      },
      parent,
    );

    const environment = new app.ManagedEnvironment(
      `${name}-environment`,
      {
        resourceGroupName,
        location,
        vnetConfiguration: { infrastructureSubnetId: subnet.id, internal: false },
        workloadProfiles: [{ name: "Consumption", workloadProfileType: "Consumption" }],
        appLogsConfiguration: {
          destination: "log-analytics",
          logAnalyticsConfiguration: {
            customerId: logs.customerId,
            sharedKey: logKeys.apply((k) => pulumi.secret(k.primarySharedKey ?? "")),
          },
        },
      },
      parent,
    );
    const dataStorage = new app.ManagedEnvironmentsStorage(
      `${name}-data-storage`,
      {
        resourceGroupName,
        environmentName: environment.name,
        storageName: "data",
        properties: {
          azureFile: { accountName: account.name, accountKey, shareName: share.name, accessMode: "ReadWrite" },
        },
      },
      parent,
    );

    this.containerApp = new app.ContainerApp(
      `${name}-app`,
      {
        resourceGroupName,
        location,
        managedEnvironmentId: environment.id,
        workloadProfileName: "Consumption",
        identity: { type: "UserAssigned", userAssignedIdentities: [identity.id] },
        configuration: {
          activeRevisionsMode: "Single",
          ingress: {
            external: true,
            transport: "tcp",
            targetPort: CONTAINER_SMTP_PORT,
            exposedPort: 25,
            additionalPortMappings: [{ external: true, targetPort: CONTAINER_HTTP_PORT, exposedPort: 80 }],
          },
          secrets: [
            ...(args.tlsCertificate
              ? [
                  {
                    name: "smtp-tls",
                    keyVaultUrl: vault.properties.apply((p) => `${p.vaultUri}secrets/${args.tlsCertificate}`),
                    identity: identity.id,
                  },
                ]
              : []),
            {
              name: "moat-config",
              keyVaultUrl: configSecret.properties.apply((p) => p.secretUri),
              identity: identity.id,
            },
          ],
        },
        template: {
          containers: [
            {
              name: "gateway",
              image: args.image,
              env: [
                { name: "MOAT_CONFIG", secretRef: "moat-config" },
                { name: "MOAT_RSPAMD_URL", value: "http://127.0.0.1:11333" },
                { name: "MOAT_CLAMD", value: "127.0.0.1:3310" },
              ],
              // Container Apps' Consumption profile takes 2 GiB a vCPU; the replica's total (with
              // the two sidecars' 1 vCPU and 2 GiB) stays within its 4 vCPUs and 8 GiB.
              resources: { cpu: args.cpu, memory: `${args.cpu * 2}Gi` },
              volumeMounts: [
                { volumeName: "data", mountPath: CONTAINER_DATA_DIR },
                ...(args.tlsCertificate ? [{ volumeName: "smtp-tls", mountPath: CONTAINER_TLS_DIR }] : []),
              ],
              probes: [
                { type: "Liveness", httpGet: { path: "/healthz", port: CONTAINER_HTTP_PORT }, periodSeconds: 30 },
                { type: "Readiness", httpGet: { path: "/healthz", port: CONTAINER_HTTP_PORT }, periodSeconds: 10 },
              ],
            },
            { name: "rspamd", image: args.rspamdImage, resources: { cpu: 0.5, memory: "1Gi" } },
            { name: "clamd", image: args.clamavImage, resources: { cpu: 0.5, memory: "1Gi" } },
          ],
          // The embedded SQLite store is single-writer: exactly one replica.
          scale: { minReplicas: 1, maxReplicas: 1 },
          volumes: [
            {
              name: "data",
              storageType: "AzureFile",
              storageName: dataStorage.name,
              mountOptions: "nobrl,uid=1000,gid=1000",
            },
            // Key Vault references refresh in the running app; the gateway polls the file.
            ...(args.tlsCertificate
              ? [{ name: "smtp-tls", storageType: "Secret", secrets: [{ secretRef: "smtp-tls", path: "tls.pem" }] }]
              : []),
          ],
        },
      },
      { parent: this, dependsOn: [canRead] },
    );

    this.inboundIp = environment.staticIp;
    this.egressIps = egressIp.ipAddress.apply((ip) => (ip ? [ip] : []));
    this.registerOutputs({ inboundIp: this.inboundIp, egressIps: this.egressIps });
  }
}
