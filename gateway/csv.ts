/**
 * RFC 4180 CSV reader for the spreadsheet imports (users, rules). Keeps the physical line
 * where each record starts, so every error can name line and column the way a spreadsheet
 * shows them. Tolerates what Excel and Google Sheets write: a UTF-8 BOM, CRLF, quoted
 * fields with embedded newlines and doubled quotes, and blank lines.
 *
 * Never throws on bad input: problems come back as CsvProblem values and the reader carries
 * on with the next record, so one bad line does not hide the others.
 */

export interface CsvRecord {
  /** 1-based line number where the record starts. */
  readonly line: number;
  readonly fields: readonly string[];
}

export interface CsvProblem {
  readonly line: number;
  /** 1-based field number, when the problem is in one field. */
  readonly column?: number;
  readonly message: string;
}

export interface CsvResult {
  readonly records: readonly CsvRecord[];
  readonly problems: readonly CsvProblem[];
}

export function readCsv(text: string): CsvResult {
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  const problems: CsvProblem[] = [];
  let line = 1;
  let index = 0;

  while (index < source.length) {
    const startLine = line;
    const fields: string[] = [];
    let field = "";
    let quoted = false;
    let fieldStarted = false;
    let broken = false;

    for (; index < source.length; index++) {
      const char = source[index];
      if (quoted) {
        if (char === '"') {
          if (source[index + 1] === '"') {
            field += '"';
            index++;
          } else {
            quoted = false;
          }
        } else {
          if (char === "\n") line++;
          field += char;
        }
        continue;
      }
      if (char === ",") {
        fields.push(field);
        field = "";
        fieldStarted = false;
      } else if (char === "\n" || (char === "\r" && source[index + 1] === "\n")) {
        index += char === "\r" ? 2 : 1;
        line++;
        break;
      } else if (char === '"' && !fieldStarted) {
        quoted = true;
        fieldStarted = true;
      } else if (char === '"') {
        if (!broken) {
          problems.push({
            line: startLine,
            column: fields.length + 1,
            message: 'a quote inside an unquoted field (quote the whole field and double the inner quote: "a ""b""")',
          });
        }
        broken = true;
        field += char;
      } else {
        fieldStarted = true;
        field += char;
      }
    }
    if (quoted) {
      problems.push({
        line: startLine,
        column: fields.length + 1,
        message: "a quoted field is not closed before the end of the file",
      });
      broken = true;
    }
    fields.push(field);
    const blank = fields.length === 1 && fields[0]?.trim() === "";
    if (!blank && !broken) records.push({ line: startLine, fields });
  }
  return { records, problems };
}

/** `line 3, column 2 (displayName): message`, the form every CSV error in Moat uses. */
export function formatCsvProblem(file: string, problem: CsvProblem, columnNames: readonly string[] = []): string {
  const name = problem.column !== undefined ? columnNames[problem.column - 1] : undefined;
  const column = problem.column === undefined ? "" : `, column ${problem.column}${name ? ` (${name})` : ""}`;
  return `${file}: line ${problem.line}${column}: ${problem.message}`;
}

export interface TableRow {
  readonly line: number;
  /** The field of a known column ("" when absent), untrimmed. */
  field(name: string): string;
  /** 1-based column number of a known column, for error messages. */
  column(name: string): number;
}

export interface TableResult {
  readonly rows: readonly TableRow[];
  readonly problems: readonly CsvProblem[];
  /** Column names in file order, for error messages. */
  readonly columns: readonly string[];
}

/**
 * A CSV with a header row naming its columns (any order, case-insensitive) out of `known`.
 * Unknown or repeated columns, a missing required column and rows with more fields than the
 * header are problems; rows come back with accessors by column name.
 */
export function readTable(text: string, known: readonly string[], required: readonly string[]): TableResult {
  const { records, problems: csvProblems } = readCsv(text);
  const problems: CsvProblem[] = [...csvProblems];
  const [header, ...records_] = records;
  if (!header)
    return {
      rows: [],
      problems: [...problems, { line: 1, message: `the file is empty; expected a header row: ${known.join(",")}` }],
      columns: [],
    };
  const columnIndex = new Map<string, number>();
  header.fields.forEach((raw, index) => {
    const name = known.find((k) => k.toLowerCase() === raw.trim().toLowerCase());
    if (!name)
      problems.push({
        line: header.line,
        column: index + 1,
        message: `unknown column ${JSON.stringify(raw.trim())}; the columns are ${known.join(", ")}`,
      });
    else if (columnIndex.has(name))
      problems.push({ line: header.line, column: index + 1, message: `column ${name} appears twice` });
    else columnIndex.set(name, index);
  });
  const columns = header.fields.map((f) => f.trim());
  const missing = required.filter((name) => !columnIndex.has(name));
  if (missing.length > 0) {
    problems.push({ line: header.line, message: `the header has no ${missing.join(", ")} column` });
    return { rows: [], problems, columns };
  }
  const rows: TableRow[] = [];
  for (const record of records_) {
    if (record.fields.length > header.fields.length) {
      problems.push({
        line: record.line,
        column: header.fields.length + 1,
        message: `${record.fields.length} fields, the header has ${header.fields.length}`,
      });
      continue;
    }
    rows.push({
      line: record.line,
      field: (name) => {
        const index = columnIndex.get(name);
        return index === undefined ? "" : (record.fields[index] ?? "");
      },
      column: (name) => (columnIndex.get(name) ?? 0) + 1,
    });
  }
  return { rows, problems, columns };
}

/** Problems in file order: by line, then column. */
export function byLine(problems: readonly CsvProblem[]): CsvProblem[] {
  return [...problems].sort(
    (a, b) => a.line - b.line || (a.column ?? Number.MAX_SAFE_INTEGER) - (b.column ?? Number.MAX_SAFE_INTEGER),
  );
}
