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
import { isDomainName, type StaticUser } from "../config";
import { type CsvProblem, readCsv } from "../csv";

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
  const { records, problems: csvProblems } = readCsv(text);
  const problems: CsvProblem[] = [...csvProblems];
  const [header, ...rows] = records;
  if (!header) {
    return {
      users: [],
      problems: [
        ...problems,
        { line: 1, message: "the file is empty; expected a header row: address,displayName,aliases" },
      ],
      columns: [],
    };
  }

  const columnIndex = new Map<string, number>();
  header.fields.forEach((raw, index) => {
    const name = USERS_CSV_COLUMNS.find((known) => known.toLowerCase() === raw.trim().toLowerCase());
    if (!name) {
      problems.push({
        line: header.line,
        column: index + 1,
        message: `unknown column ${JSON.stringify(raw.trim())}; the columns are ${USERS_CSV_COLUMNS.join(", ")}`,
      });
    } else if (columnIndex.has(name)) {
      problems.push({ line: header.line, column: index + 1, message: `column ${name} appears twice` });
    } else {
      columnIndex.set(name, index);
    }
  });
  const columns = header.fields.map((f) => f.trim());
  if (!columnIndex.has("address")) {
    problems.push({ line: header.line, message: "the header has no address column" });
    return { users: [], problems, columns };
  }

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

  for (const row of rows) {
    const problemsBefore = problems.length;
    if (row.fields.length > header.fields.length) {
      problems.push({
        line: row.line,
        column: header.fields.length + 1,
        message: `${row.fields.length} fields, the header has ${header.fields.length}`,
      });
      continue;
    }
    const field = (name: string) => {
      const index = columnIndex.get(name);
      return index === undefined ? "" : (row.fields[index] ?? "");
    };
    const addressColumn = (columnIndex.get("address") ?? 0) + 1;
    const aliasesColumn = (columnIndex.get("aliases") ?? 0) + 1;
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
  return { users, problems, columns };
}
