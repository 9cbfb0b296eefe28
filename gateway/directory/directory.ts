/**
 * The directory the static verifier consults: every address that reaches a mailbox (primary
 * addresses and aliases), mapped to the primary address. Built once from a list of users
 * and then read-only; a sync builds a new one and swaps it in whole, so a lookup never sees
 * a half-built directory.
 *
 * Lookups are case-insensitive (Exchange Online matches addresses that way).
 */
import type { StaticUser } from "../config";

export interface DirectoryEntry {
  /** The mailbox's primary address. */
  readonly primary: string;
  readonly displayName: string;
}

export interface Directory {
  /** The mailbox an address reaches, or undefined when nothing in the directory has it. */
  lookup(address: string): DirectoryEntry | undefined;
  readonly size: number;
}

export function createDirectory(users: readonly StaticUser[]): Directory {
  const byAddress = new Map<string, DirectoryEntry>();
  for (const user of users) {
    const entry: DirectoryEntry = { primary: user.address.toLowerCase(), displayName: user.displayName };
    byAddress.set(entry.primary, entry);
    for (const alias of user.aliases) byAddress.set(alias.toLowerCase(), entry);
  }
  return {
    lookup: (address) => byAddress.get(address.toLowerCase()),
    size: byAddress.size,
  };
}
