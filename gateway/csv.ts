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
