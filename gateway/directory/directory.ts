/**
 * The directory the static verifier consults: every address that reaches a recipient
 * (primary addresses and aliases), mapped to that recipient. Built whole from a list of
 * records and then read-only; a sync builds a new one and swaps it in, so a lookup never sees
 * a half-built directory.
 *
 * Recipients are users (people, shared and resource mailboxes) or groups (distribution
 * lists, Microsoft 365 groups, mail-enabled security groups). Groups are recipients, not
 * people: per-person features (release requests, internal display names for impersonation)
 * use `people()` only.
 *
 * Lookups are case-insensitive (Exchange Online matches addresses that way).
 */
import type { StaticUser } from "../config";
import { AddressIndex } from "./address-index";

export type RecipientKind = "user" | "group";

export interface DirectoryRecord {
  readonly primary: string;
  readonly aliases: readonly string[];
  readonly displayName: string;
  readonly kind: RecipientKind;
  /** Where it came from: the spreadsheet import or the Entra ID sync. */
  readonly source: "csv" | "graph";
}

export interface DirectoryEntry {
  /** The recipient's primary address. */
  readonly primary: string;
  readonly displayName: string;
  readonly kind: RecipientKind;
}

export interface Directory {
  /** The recipient an address reaches, or undefined when nothing in the directory has it. */
  lookup(address: string): DirectoryEntry | undefined;
  /** Users only (never groups): who the per-person features know. */
  people(): readonly DirectoryEntry[];
  /** Addresses known (primary and aliases). */
  readonly size: number;
}

export function recordsFromStaticUsers(users: readonly StaticUser[]): DirectoryRecord[] {
  return users.map((u) => ({
    primary: u.address,
    aliases: u.aliases,
    displayName: u.displayName,
    kind: "user",
    source: "csv",
  }));
}

/**
 * Merge rule: the Entra ID sync is the directory of record. An address it knows maps to its
 * recipient; the spreadsheet adds addresses the sync does not know (a domain that is not in
 * Entra ID, a mailbox the sync cannot see), never overrides one it does.
 */
export function createDirectory(records: readonly DirectoryRecord[]): Directory {
  let addresses = 0;
  for (const record of records) addresses += 1 + record.aliases.length;
  const byAddress = new AddressIndex<DirectoryEntry>(addresses);
  const people: DirectoryEntry[] = [];
  const ordered = [...records.filter((r) => r.source === "graph"), ...records.filter((r) => r.source === "csv")];
  for (const record of ordered) {
    const entry: DirectoryEntry = {
      primary: record.primary.toLowerCase(),
      displayName: record.displayName,
      kind: record.kind,
    };
    let added = byAddress.add(record.primary, entry);
    for (const alias of record.aliases) added = byAddress.add(alias, entry) || added;
    if (added && entry.kind === "user") people.push(entry);
  }
  return {
    lookup: (address) => byAddress.get(address),
    people: () => people,
    size: byAddress.size,
  };
}
