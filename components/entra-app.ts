/**
 * The Entra ID app registration the gateway uses: application, service principal, and a
 * client secret whose value is a Pulumi secret. Graph permissions and their consent are
 * added by the features that need them (directory sync: User.Read.All).
 *
 * Validates its inputs before registering children; children are named `${name}-...` with
 * `{ parent: this }`, so renaming the component is an alias, not a replacement.
 */
import * as azuread from "@pulumi/azuread";
import * as pulumi from "@pulumi/pulumi";

export interface EntraAppArgs {
  /** Shown in the Entra admin center: say which gateway and customer it is. */
  readonly displayName: string;
  /** Rotating the secret: change this value (e.g. a date) and run `pulumi up`. */
  readonly secretRotation?: string;
}

export class EntraApp extends pulumi.ComponentResource {
  readonly clientId: pulumi.Output<string>;
  readonly servicePrincipalId: pulumi.Output<string>;
  /** Secret output. */
  readonly clientSecret: pulumi.Output<string>;

  constructor(name: string, args: EntraAppArgs, opts?: pulumi.ComponentResourceOptions) {
    super("moat:entra:App", name, {}, opts);
    if (args.displayName.trim() === "" || args.displayName.length > 120) {
      throw new Error(`${name}: displayName must be 1 to 120 characters`);
    }

    const app = new azuread.Application(
      `${name}-app`,
      { displayName: args.displayName, signInAudience: "AzureADMyOrg" },
      { parent: this },
    );
    const servicePrincipal = new azuread.ServicePrincipal(
      `${name}-sp`,
      { clientId: app.clientId, appRoleAssignmentRequired: false },
      { parent: this },
    );
    const password = new azuread.ApplicationPassword(
      `${name}-secret`,
      {
        applicationId: app.id,
        displayName: "moat-gateway",
        // No endDate: Entra picks its default (about two years); rotate before it ends.
        rotateWhenChanged: { rotation: args.secretRotation ?? "initial" },
      },
      { parent: this, additionalSecretOutputs: ["value"] },
    );

    this.clientId = app.clientId;
    this.servicePrincipalId = servicePrincipal.objectId;
    this.clientSecret = pulumi.secret(password.value);
    this.registerOutputs({ clientId: this.clientId, servicePrincipalId: this.servicePrincipalId });
  }
}
