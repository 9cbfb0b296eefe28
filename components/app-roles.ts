/**
 * Application permissions on a Microsoft API, done the same way for every app the stack
 * creates: the role ids are read from the API's service principal in the tenant (never
 * guessed), and admin consent is granted as one app role assignment per role.
 */
import * as azuread from "@pulumi/azuread";
import * as pulumi from "@pulumi/pulumi";

export interface ApiRoles {
  /** The API's appId, for `requiredResourceAccesses`. */
  readonly resourceAppId: string;
  /** Its service principal in the tenant. */
  readonly servicePrincipalObjectId: pulumi.Output<string>;
  /** Role ids in the order the roles were asked for. */
  readonly ids: pulumi.Output<string[]>;
  /** The `requiredResourceAccesses` entry asking for these roles. */
  readonly access: pulumi.Output<{ resourceAppId: string; resourceAccesses: { id: string; type: string }[] }>;
}

export function apiRoles(
  api: { appId: string; name: string },
  roles: readonly string[],
  parent: pulumi.Resource,
): ApiRoles {
  const servicePrincipal = azuread.getServicePrincipalOutput({ clientId: api.appId }, { parent });
  const ids = servicePrincipal.appRoleIds.apply((known) =>
    roles.map((role) => {
      const id = known[role];
      if (!id) throw new Error(`the ${api.name} service principal has no app role ${role}`);
      return id;
    }),
  );
  return {
    resourceAppId: api.appId,
    servicePrincipalObjectId: servicePrincipal.objectId,
    ids,
    access: ids.apply((list) => ({
      resourceAppId: api.appId,
      resourceAccesses: list.map((id) => ({ id, type: "Role" })),
    })),
  };
}

/**
 * Admin consent: one app role assignment per role. `resourceName` names each (a resource's
 * name is its identity: keep names stable).
 */
export function grantConsent(
  resourceName: (role: string) => string,
  roles: readonly string[],
  api: ApiRoles,
  principalObjectId: pulumi.Input<string>,
  parent: pulumi.Resource,
): azuread.AppRoleAssignment[] {
  return roles.map(
    (role, index) =>
      new azuread.AppRoleAssignment(
        resourceName(role),
        {
          appRoleId: api.ids.apply((ids) => ids[index] ?? ""),
          principalObjectId,
          resourceObjectId: api.servicePrincipalObjectId,
        },
        { parent },
      ),
  );
}
