/**
 * `moat rules check FILE.csv`: validates a rules CSV and prints every problem with its line
 * and column; exit 1 on any. The same-domain check uses the domains of the stacks that use
 * the file (`moat:rules`), or of every stack for the global rules file and a file no stack
 * uses yet.
 */
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { GLOBAL_RULES_FILE, listStacks, readStackFile } from "../components/stack-config";
import { parseSettings } from "../components/settings";
import { formatCsvProblem } from "./csv";
import { parseRulesCsv } from "./rules/rules";

export function checkRulesFile(projectDir: string, file: string, print: (line: string) => void): number {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    print(`${file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`);
    return 1;
  }
  const path = relative(projectDir, resolve(file));
  const global = path === GLOBAL_RULES_FILE;
  // The domains of the stacks that use this file; for the global file, or a file no stack uses
  // yet, every stack's (an allow for any customer's own domain is a forgery waiting to happen).
  const users = new Set<string>();
  const every = new Set<string>();
  for (const stack of listStacks(projectDir)) {
    try {
      const settings = parseSettings(readStackFile(projectDir, stack));
      for (const d of settings.domains) {
        every.add(d.name);
        if (settings.rules === path) users.add(d.name);
      }
    } catch {
      // a stack that does not parse is `check`'s business
    }
  }
  const domains = global || users.size === 0 ? every : users;
  const result = parseRulesCsv(text, { file: path, scope: global ? "global" : "customer" }, [...domains]);
  for (const problem of result.problems) print(formatCsvProblem(file, problem, result.columns));
  if (result.problems.length > 0) {
    print(`${file}: ${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}`);
    return 1;
  }
  const count = (kind: string) => result.rules.filter((r) => r.kind === kind).length;
  print(
    `${file}: ${result.rules.length} rules OK (${count("allow")} allow, ${count("block")} block, ${count("custom")} custom)`,
  );
  return 0;
}
