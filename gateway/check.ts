/**
 * `moat check`: validates every stack in stacks/ offline — the stack config schema, the
 * files it points at (users CSV), the gatewayConfig document it produces, the Exchange
 * Online objects it implies, and domains declared by more than one stack. Prints every
 * problem; returns the count.
 */
import { RoutingPlanError, planExchangeRouting } from "../components/exchange/plan";
import { buildGatewayConfig } from "../components/gateway-document";
import { SettingsError, gatewayHostname } from "../components/settings";
import { type LoadedStack, listStacks, loadStackFile } from "../components/stack-config";
import { GatewayConfigError } from "./config";
import { LOCAL_HOSTING } from "./default-config";

export function checkStacks(projectDir: string, print: (line: string) => void): number {
  const problems: string[] = [];
  const loaded: LoadedStack[] = [];
  const names = listStacks(projectDir);
  for (const name of names) {
    try {
      const stack = loadStackFile(projectDir, name);
      buildGatewayConfig(stack, LOCAL_HOSTING);
      const { settings } = stack;
      planExchangeRouting({
        settings,
        egressIps: settings.gateway.egressIps,
        gatewayHost: gatewayHostname(settings),
        customer: name,
      });
      loaded.push(stack);
    } catch (error) {
      if (error instanceof RoutingPlanError) {
        problems.push(`stacks/Pulumi.${name}.yaml: ${error.message}`);
      } else if (error instanceof SettingsError || error instanceof GatewayConfigError) {
        problems.push(...error.problems.map((p) => `stacks/Pulumi.${name}.yaml: ${p}`));
      } else {
        throw error;
      }
    }
  }
  const owner = new Map<string, string>();
  for (const stack of loaded) {
    for (const domain of stack.settings.domains) {
      const other = owner.get(domain.name);
      if (other)
        problems.push(
          `stacks/Pulumi.${stack.name}.yaml: moat:domains: ${domain.name} is also declared by stack ${other}`,
        );
      else owner.set(domain.name, stack.name);
    }
  }
  for (const problem of problems) print(problem);
  print(
    problems.length === 0
      ? `${names.length} stack(s) checked: no problems`
      : `${problems.length} problem(s) in ${names.length} stack(s)`,
  );
  return problems.length;
}
