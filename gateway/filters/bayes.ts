/**
 * The Bayes detector: a per-customer statistical filter trained on the customer's own mail
 * (`moat learn`, and quarantine releases — see README "Bayes"). It gives no category itself: it
 * adds to the spam score, which pipeline.ts compares with `filters.spamThreshold` together with
 * rspamd's score — as rspamd's own BAYES_SPAM / BAYES_HAM symbols do inside rspamd.
 *
 * Its contribution is BAYES_WEIGHT × (2p − 1) for the classifier's probability p: −8 for
 * certain ham, 0 when unsure, +8 for certain spam, so a certain verdict outweighs rspamd's
 * "add header" threshold of 6 either way but not its reject threshold of 15.
 *
 * Until it has learned `minSpam` spam and `minHam` ham messages (200 each by default, as
 * SpamAssassin's bayes_min_spam_num / bayes_min_ham_num) it stays out of the score and says so.
 */
import { classify, tokenize } from "./bayes-classifier";
import type { BayesLabel, BayesStore } from "./bayes-store";
import { parseMessage } from "./message";
import type { Filter } from "./types";

export const BAYES_WEIGHT = 8;
const CLUES_SHOWN = 6;

export function createBayesFilter(options: {
  readonly store: BayesStore;
  readonly minSpam: number;
  readonly minHam: number;
}): Filter {
  return {
    name: "bayes",
    async run(message) {
      const learned = options.store.totals();
      if (learned.spam < options.minSpam || learned.ham < options.minHam)
        return {
          findings: [
            {
              detector: "bayes",
              symbol: "BAYES_NOT_TRAINED",
              detail: `not used yet: learned ${learned.spam} spam and ${learned.ham} ham, needs ${options.minSpam} and ${options.minHam}`,
            },
          ],
        };
      const tokens = tokenize(message.parsed);
      const result = classify(tokens, options.store.counts(tokens), learned);
      const score = Math.round(BAYES_WEIGHT * (2 * result.probability - 1) * 100) / 100;
      const symbol =
        result.probability >= 0.8 ? "BAYES_SPAM" : result.probability <= 0.2 ? "BAYES_HAM" : "BAYES_UNSURE";
      const clues = result.clues
        .slice(0, CLUES_SHOWN)
        .map((c) => `${c.token} ${c.probability.toFixed(2)}`)
        .join(", ");
      return {
        findings: [
          {
            detector: "bayes",
            score,
            symbol,
            detail: `spam probability ${result.probability.toFixed(3)} (score ${score > 0 ? "+" : ""}${score})${clues ? `; strongest clues: ${clues}` : ""}`,
          },
        ],
        spamScore: score,
      };
    },
  };
}

/** Teaches the store one message (as received, or as exported from the tracker). */
export async function learnMessage(
  store: BayesStore,
  raw: Buffer,
  label: BayesLabel,
): Promise<"learned" | "unchanged" | "moved"> {
  return store.learn(tokenize(await parseMessage(raw)), label);
}
