/**
 * A small cache of answers that expire: each kept `ttlMs` from when it was asked for, at most
 * `maxEntries` (the oldest out first). Used for DNS answers (the authentication's lookups, the
 * client's name), where the value is the promise of the answer, so concurrent askers share one
 * lookup.
 */
export interface ExpiringCache<V> {
  /** The kept value for `key`, or `load()`'s, kept from now on. */
  get(key: string, load: () => V): V;
  /** Forgets `key` if it still holds `value` (an answer that should not be kept after all). */
  forget(key: string, value: V): void;
}

export function createExpiringCache<V>(
  ttlMs: number,
  maxEntries: number,
  now: () => number = Date.now,
): ExpiringCache<V> {
  const entries = new Map<string, { until: number; value: V }>();
  return {
    get(key, load) {
      const kept = entries.get(key);
      if (kept && kept.until > now()) return kept.value;
      entries.delete(key);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
      const value = load();
      entries.set(key, { until: now() + ttlMs, value });
      return value;
    },
    forget(key, value) {
      if (entries.get(key)?.value === value) entries.delete(key);
    },
  };
}
