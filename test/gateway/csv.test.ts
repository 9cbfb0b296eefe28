import { describe, expect, it } from "vitest";
import { formatCsvProblem, readCsv } from "../../gateway/csv";
import { parseUsersCsv } from "../../gateway/directory/users-csv";

describe("CSV reading", () => {
  it("reads what spreadsheets write: BOM, CRLF, quotes, embedded newlines, blank lines", () => {
    const { records, problems } = readCsv('\uFEFFa,b\r\n"x, y","he said ""hi"""\r\n\r\n"multi\nline",z\nlast,row');
    expect(problems).toEqual([]);
    expect(records).toEqual([
      { line: 1, fields: ["a", "b"] },
      { line: 2, fields: ["x, y", 'he said "hi"'] },
      { line: 4, fields: ["multi\nline", "z"] },
      { line: 6, fields: ["last", "row"] },
    ]);
  });

  it("reports a stray quote and an unclosed quote with line and column, and keeps the other lines", () => {
    const { records, problems } = readCsv('a,b\nx,y"z\nok,1\n"open,2');
    expect(records.map((r) => r.line)).toEqual([1, 3]);
    expect(problems.map((p) => formatCsvProblem("f.csv", p, ["a", "b"]))).toEqual([
      'f.csv: line 2, column 2 (b): a quote inside an unquoted field (quote the whole field and double the inner quote: "a ""b""")',
      "f.csv: line 4, column 1 (a): a quoted field is not closed before the end of the file",
    ]);
  });
});

describe("users CSV import", () => {
  const domains = ["acme.com"];

  it("takes columns in any order and case, aliases separated by ; , or spaces", () => {
    const result = parseUsersCsv(
      'Aliases,ADDRESS,displayname\n"a@acme.com; b@acme.com,c@acme.com d@acme.com",Jo@Acme.com,Jo Doe\n',
      domains,
    );
    expect(result.problems).toEqual([]);
    expect(result.users).toEqual([
      {
        address: "jo@acme.com",
        displayName: "Jo Doe",
        aliases: ["a@acme.com", "b@acme.com", "c@acme.com", "d@acme.com"],
      },
    ]);
  });

  it("names unknown and missing columns", () => {
    expect(parseUsersCsv("mail,name\n", domains).problems.map((p) => p.message)).toEqual([
      'unknown column "mail"; the columns are address, displayName, aliases',
      'unknown column "name"; the columns are address, displayName, aliases',
      "the header has no address column",
    ]);
    expect(parseUsersCsv("", domains).problems[0]?.message).toMatch(/the file is empty/);
  });

  it("refuses empty addresses, extra fields, foreign domains and duplicates line by line", () => {
    const result = parseUsersCsv(
      "address,displayName\n,Nobody\njo@acme.com,Jo,extra\nann@acme.com,Ann\nANN@acme.com,Ann again\n",
      domains,
    );
    expect(result.users.map((u) => u.address)).toEqual(["ann@acme.com"]);
    expect(result.problems).toEqual([
      { line: 2, column: 1, message: "address is empty" },
      { line: 3, column: 3, message: "3 fields, the header has 2" },
      { line: 5, column: 1, message: "ann@acme.com is already listed on line 4" },
    ]);
  });
});
