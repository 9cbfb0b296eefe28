/**
 * The detectors a gatewayConfig asks for, in one list: authentication, infomail, attachments,
 * phishing and impersonation always; rspamd and ClamAV when their engines are configured
 * (`filters.rspamdUrl`, `filters.clamd`, or MOAT_RSPAMD_URL / MOAT_CLAMD); Bayes when
 * the caller opened its store (`openBayesStoreFor`, which opens none when `filters.bayes.enabled` is false).
 */
import type { GatewayConfig } from "../config";
import { createRuleMatcher } from "../rules/rules";
import { type DnsResolve, createAuthFilter, createDnsResolve } from "./auth";
import { createAttachmentFilter } from "./attachments";
import { createBayesFilter } from "./bayes";
import type { BayesStore } from "./bayes-store";
export { openBayesStoreFor } from "./bayes-store";
import { createClamavFilter } from "./clamav";
import { createImpersonationFilter } from "./impersonation";
import { createInfomailFilter } from "./infomail";
import { createPhishingFilter } from "./phishing";
import { type Scanner, createScanner } from "./pipeline";
import { createRspamdFilter } from "./rspamd";
import type { Filter } from "./types";

/** The detectors that read the message itself and need no engine or network. */
export function createContentFilters(bannedExtensions: readonly string[]): Filter[] {
  return [
    createInfomailFilter(),
    createAttachmentFilter({ bannedExtensions }),
    createPhishingFilter(),
    createImpersonationFilter(),
  ];
}

export interface FilterResources {
  readonly resolve?: DnsResolve;
  readonly bayes?: BayesStore;
}

export function createFilters(config: GatewayConfig, resources: FilterResources = {}): Filter[] {
  const { resolve, bayes } = resources;
  return [
    createAuthFilter({ resolve: resolve ?? createDnsResolve(config.dns.servers), hostname: config.smtp.hostname }),
    ...(config.filters.rspamdUrl ? [createRspamdFilter({ url: config.filters.rspamdUrl })] : []),
    ...(config.filters.clamd ? [createClamavFilter(config.filters.clamd)] : []),
    ...(bayes
      ? [
          createBayesFilter({
            store: bayes,
            minSpam: config.filters.bayes.minSpam,
            minHam: config.filters.bayes.minHam,
          }),
        ]
      : []),
    ...createContentFilters(config.policy.bannedExtensions),
  ];
}

export function createScannerFromConfig(config: GatewayConfig, resources: FilterResources = {}): Scanner {
  return createScanner({
    filters: createFilters(config, resources),
    spamThreshold: config.filters.spamThreshold,
    rules: createRuleMatcher(config.rules),
    policy: config.policy,
    domains: config.domains.map((d) => d.name),
    onEngineFailure: config.filters.onEngineFailure,
  });
}
