/**
 * Delivery to an internet domain (outbound mail from the tenant, and bounces): its MX hosts
 * in preference order, opportunistic STARTTLS — or, when the domain publishes an MTA-STS
 * policy in `enforce` mode, only MX hosts the policy names, with TLS required and the
 * certificate verified against the MX name.
 *
 * The next MX is tried only when one could not be talked to (connection or TLS failure);
 * an SMTP answer from an MX is final for this attempt. Never throws.
 */
import type { Logger } from "../log";
import type { MtaStsPolicies } from "./mta-sts-client";
import { mxMatches } from "./mta-sts-client";
import type { MxResolver } from "./mx";
import { type AttemptResult, type RecipientOutcome, attemptDelivery } from "./smtp-client";

export interface RemoteDeliveryOptions {
  readonly resolver: MxResolver;
  readonly mtaSts: MtaStsPolicies;
  readonly heloName: string;
  /** 25, except in lab setups. */
  readonly port: number;
  readonly log: Logger;
  readonly attempt?: typeof attemptDelivery;
}

export type RemoteDelivery = (
  domain: string,
  envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] },
  message: Parameters<typeof attemptDelivery>[2],
) => Promise<AttemptResult>;

export function createRemoteDelivery(options: RemoteDeliveryOptions): RemoteDelivery {
  const attempt = options.attempt ?? attemptDelivery;
  const everyone = (rcptTo: readonly string[], outcome: RecipientOutcome, response: string): AttemptResult => ({
    outcomes: new Map(rcptTo.map((r) => [r, { outcome, response }])),
  });

  return async (domain, envelope, message) => {
    const answer = await options.resolver.resolve(domain);
    if (answer.kind === "permanent") return everyone(envelope.rcptTo, "permanent", `550 5.1.2 ${answer.reason}`);
    if (answer.kind === "temporary") return everyone(envelope.rcptTo, "temporary", `451 4.4.3 ${answer.reason}`);
    const policy = await options.mtaSts.policyFor(domain);
    const enforce = policy?.mode === "enforce";
    const hosts = enforce
      ? answer.hosts.filter((host) => policy.mx.some((pattern) => mxMatches(pattern, host)))
      : answer.hosts;
    if (hosts.length === 0) {
      return everyone(
        envelope.rcptTo,
        "temporary",
        `451 4.7.5 no MX host of ${domain} is allowed by its MTA-STS policy`,
      );
    }
    let last = everyone(envelope.rcptTo, "temporary", `451 4.4.1 no MX host of ${domain} could be reached`);
    for (const host of hosts) {
      const addresses = await options.resolver.addresses(host);
      for (const address of addresses.slice(0, 2)) {
        const result = await attempt(
          {
            host: address,
            tlsServername: host,
            port: options.port,
            tls: enforce ? "required" : "allow-plain",
            verifyCertificate: enforce,
            heloName: options.heloName,
          },
          envelope,
          message,
        );
        const talked = [...result.outcomes.values()].some((o) => /^\d{3}[ -]/.test(o.response));
        if (talked) return result;
        options.log.info("MX host could not be used; trying the next", {
          domain,
          mx: host,
          address,
          reply: [...result.outcomes.values()][0]?.response,
        });
        last = result;
      }
    }
    return last;
  };
}
