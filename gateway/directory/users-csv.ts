/**
 * The spreadsheet import of users (`moat:users`): a CSV with a header row naming the columns
 * `address` (required), `displayName` and `aliases` (optional; several aliases separated by
 * `;`, `,` or spaces inside the quoted field). Column order is free, names are
 * case-insensitive.
 *
 * Every problem is returned with its line and column; a bad line is left out and the rest
 * still parse, but callers treat any problem as a failed import (a stack with a broken users
 * file must not deploy a directory that silently lacks people).
 */
import type { StaticUser } from "../config";
import { isDomainName } from "../names";
import { type CsvProblem, byLine, readTable } from "../csv";

export const USERS_CSV_COLUMNS = ["address", "displayName", "aliases"] as const;

export interface UsersCsvResult {
  readonly users: readonly StaticUser[];
  readonly problems: readonly CsvProblem[];
  /** Column names in file order, for error messages. */
  readonly columns: readonly string[];
}

const SIMPLE_ADDRESS = /^[^\s@<>()\[\],;:"]+@([^\s@]+)$/;

/** Lower-cases the domain part; Exchange Online treats local parts case-insensitively too. */
export function normaliseAddress(address: string): string {
  return address.trim().toLowerCase();
}

export function parseUsersCsv(text: string, customerDomains: readonly string[]): UsersCsvResult {
  const table = readTable(text, USERS_CSV_COLUMNS, ["address"]);
  const problems: CsvProblem[] = [...table.problems];
  const { columns } = table;

  const domains = new Set(customerDomains.map((d) => d.toLowerCase()));
  const firstSeen = new Map<string, number>();
  const users: StaticUser[] = [];

  const checkAddress = (raw: string, line: number, column: number): string | undefined => {
    const address = normaliseAddress(raw);
    const match = SIMPLE_ADDRESS.exec(address);
    if (!match || !isDomainName(match[1] ?? "")) {
      problems.push({ line, column, message: `${JSON.stringify(raw.trim())} is not an e-mail address` });
      return undefined;
    }
    if (!domains.has(match[1] ?? "")) {
      problems.push({
        line,
        column,
        message: `${address} is not in one of the stack's domains (${[...domains].join(", ")})`,
      });
      return undefined;
    }
    const earlier = firstSeen.get(address);
    if (earlier !== undefined) {
      problems.push({ line, column, message: `${address} is already listed on line ${earlier}` });
      return undefined;
    }
    firstSeen.set(address, line);
    return address;
  };

  for (const row of table.rows) {
    const problemsBefore = problems.length;
    const field = row.field;
    const addressColumn = row.column("address");
    const aliasesColumn = row.column("aliases");
    if (field("address").trim() === "") {
      problems.push({ line: row.line, column: addressColumn, message: "address is empty" });
      continue;
    }
    const address = checkAddress(field("address"), row.line, addressColumn);
    const aliases = field("aliases")
      .split(/[;,\s]+/)
      .filter((alias) => alias !== "")
      .map((alias) => checkAddress(alias, row.line, aliasesColumn));
    if (address === undefined || problems.length > problemsBefore) continue;
    users.push({
      address,
      displayName: field("displayName").trim(),
      aliases: aliases.filter((alias): alias is string => alias !== undefined),
    });
  }
  return { users, problems: byLine(problems), columns };
}
