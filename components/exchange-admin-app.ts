/**
 * The identity the Pulumi program uses to manage Exchange Online in the customer's tenant
 * (when the stack manages Exchange with its own identity): an app registration with the
 * application permission Exchange.ManageAsApp on "Office 365 Exchange Online", admin consent
 * through an app role assignment, the Exchange Administrator directory role, and a client
 * secret (Pulumi secret) that only the program's Exchange provider uses — never the gateway.
 *
 * Role ids are read from the Exchange Online service principal in the tenant, not guessed.
 */
import * as azuread from "@pulumi/azuread";
import * as pulumi from "@pulumi/pulumi";
import { apiRoles, grantConsent } from "./app-roles";

/** "Office 365 Exchange Online", the same appId in every tenant. */
export const EXCHANGE_ONLINE_APP_ID = "00000002-0000-0ff1-ce00-000000000000";
export const EXCHANGE_MANAGE_AS_APP = "Exchange.ManageAsApp";
export const EXCHANGE_ADMINISTRATOR_ROLE = "Exchange Administrator";

export class ExchangeAdminApp extends pulumi.ComponentResource {
  readonly clientId: pulumi.Output<string>;
  /** Secret output. */
  readonly clientSecret: pulumi.Output<string>;
  /** Resolves once consent and the role are assigned (the provider waits on these). */
  readonly ready: pulumi.Output<string>;

  constructor(name: string, args: { displayName: string }, opts?: pulumi.ComponentResourceOptions) {
    super("moat:entra:ExchangeAdminApp", name, {}, opts);
    const exchange = apiRoles(
      { appId: EXCHANGE_ONLINE_APP_ID, name: "Office 365 Exchange Online" },
      [EXCHANGE_MANAGE_AS_APP],
      this,
    );
    const app = new azuread.Application(
      `${name}-app`,
      { displayName: args.displayName, signInAudience: "AzureADMyOrg", requiredResourceAccesses: [exchange.access] },
      { parent: this },
    );
    const servicePrincipal = new azuread.ServicePrincipal(`${name}-sp`, { clientId: app.clientId }, { parent: this });
    const [consent] = grantConsent(
      () => `${name}-consent`,
      [EXCHANGE_MANAGE_AS_APP],
      exchange,
      servicePrincipal.objectId,
      this,
    );
    const role = new azuread.DirectoryRole(
      `${name}-exchange-admin-role`,
      { displayName: EXCHANGE_ADMINISTRATOR_ROLE },
      { parent: this },
    );
    const roleAssignment = new azuread.DirectoryRoleAssignment(
      `${name}-exchange-admin`,
      { roleId: role.templateId, principalObjectId: servicePrincipal.objectId },
      { parent: this },
    );
    const password = new azuread.ApplicationPassword(
      `${name}-secret`,
      { applicationId: app.id, displayName: "moat-exchange-provisioning" },
      { parent: this, additionalSecretOutputs: ["value"] },
    );

    this.clientId = app.clientId;
    this.clientSecret = pulumi.secret(password.value);
    this.ready = pulumi.all([consent?.id ?? "", roleAssignment.id]).apply(([a, b]) => `${a},${b}`);
    this.registerOutputs({ clientId: this.clientId });
  }
}
