/**
 * The command line: `npm run moat -- <command>` (SPEC §4). Parses arguments, dispatches,
 * and turns known errors into one clear message and exit code 1 (2 for usage).
 */
import { SettingsError } from "../components/settings";
import { PROJECT_DIR } from "../components/stack-config";
import { checkStacks } from "./check";
import { GatewayConfigError, zApiToken } from "./config";
import { CertificateError } from "./inbound/tls";
import { serve } from "./serve";
import { newApiToken } from "./web/auth";
import { tuneV8 } from "./v8-tuning";

const USAGE = `usage: npm run moat -- <command>

  serve [--config FILE]     run the gateway (FILE: \`pulumi stack output --json --show-secrets\`
                            or the gatewayConfig document; else MOAT_CONFIG; else the embedded default)
  check                     validate every stack in stacks/ offline
  scan [--config FILE] [--ip IP] [--helo NAME] [--from ADDR] MESSAGE.eml...
                            the verdict for each message, without delivering: one JSON line each
  learn [--config FILE] --spam|--ham PATH...   teach the Bayes filter messages (files or directories)
  sync [--config FILE] [--full]       one directory sync from Entra ID now (--full: clear cache & full sync)
  rules check FILE.csv      validate a rules CSV: every problem with line and column; exit 1 on any
  password NAME [--role admin|helpdesk]    reads a password from stdin, prints the moat:access.admins entry (scrypt hash)
  token new NAME [--role admin|helpdesk]   make an admin API token (prints it once, and its SHA-256 for moat:access)
  plan --stack NAME         what a stack declares, offline (resources, inputs, outputs; secrets masked)
`;

class UsageError extends Error {}

function option(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  if (index < 0) return undefined;
  const value = args[index + 1];
  if (value === undefined || value.startsWith("--")) throw new UsageError(`${name} needs a value`);
  args.splice(index, 2);
  return value;
}

function flag(args: string[], name: string): boolean {
  const index = args.indexOf(name);
  if (index < 0) return false;
  args.splice(index, 1);
  return true;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const args = [...rest];
  switch (command) {
    case "serve": {
      const config = option(args, "--config");
      if (args.length > 0) throw new UsageError(`serve: unexpected ${args.join(" ")}`);
      await serve(config, process.env);
      return -1; // keeps running until a signal
    }
    case "check":
      return checkStacks(PROJECT_DIR, (line) => console.log(line)) === 0 ? 0 : 1;
    case "plan": {
      const stack = option(args, "--stack");
      if (!stack || args.length > 0) throw new UsageError("plan needs --stack NAME and nothing else");
      // Loaded here only: plan needs the Pulumi SDK, which the gateway image does not ship.
      const { formatPlan, runPlan } = await import("./plan.js");
      const run = await runPlan(stack);
      for (const line of formatPlan(stack, run)) console.log(line);
      return run.error ? 1 : 0;
    }
    case "sync": {
      const config = option(args, "--config");
      const full = flag(args, "--full");
      if (args.length > 0) throw new UsageError(`sync: unexpected ${args.join(" ")}`);
      const { syncOnce } = await import("./sync-command.js");
      return syncOnce(config, full, process.env, (line) => console.log(line));
    }
    case "password": {
      const role = option(args, "--role") ?? "admin";
      const [name, ...extra] = args;
      if (!name || extra.length > 0) throw new UsageError("password NAME [--role admin|helpdesk] < password");
      const { hashPassword } = await import("./web/auth.js");
      const { zAdminAccount } = await import("./config.js");
      const password = (
        await new Promise<string>((resolve) => {
          let text = "";
          process.stdin.on("data", (d: Buffer) => (text += d.toString()));
          process.stdin.on("end", () => resolve(text));
        })
      ).replace(/\r?\n$/, "");
      if (password.length < 12) throw new UsageError("password: at least 12 characters, read from stdin");
      const entry = { name, role, passwordHash: hashPassword(password) };
      const parsed = zAdminAccount.safeParse(entry);
      if (!parsed.success)
        throw new UsageError(
          `password: ${parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join("; ")}`,
        );
      console.log("add to the stack's moat:access (only the hash is stored):");
      console.log(
        `  moat:access:\n    admins:\n      - { name: ${name}, role: ${role}, passwordHash: "${entry.passwordHash}" }`,
      );
      return 0;
    }
    case "token": {
      const role = option(args, "--role") ?? "admin";
      const [verb, name, ...extra] = args;
      if (verb !== "new" || !name || extra.length > 0) throw new UsageError("token new NAME [--role admin|helpdesk]");
      const parsed = zApiToken.safeParse({ name, role, sha256: "0".repeat(64) });
      if (!parsed.success)
        throw new UsageError(
          `token: ${parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join("; ")}`,
        );
      const { token, sha256 } = newApiToken();
      console.log(`token (shown once; keep it in a password manager or CI secret store):\n  ${token}\n`);
      console.log("add to the stack's moat:access (only the hash is stored):");
      console.log(`  moat:access:\n    tokens:\n      - { name: ${name}, role: ${role}, sha256: ${sha256} }`);
      return 0;
    }
    case "scan": {
      const config = option(args, "--config");
      const ip = option(args, "--ip");
      const helo = option(args, "--helo");
      const from = option(args, "--from");
      if (args.length === 0 || args.some((a) => a.startsWith("--")))
        throw new UsageError("scan needs one or more MESSAGE.eml files");
      const { scanFiles } = await import("./scan-command.js");
      return scanFiles(
        {
          configFile: config,
          files: args,
          ...(ip ? { ip } : {}),
          ...(helo ? { helo } : {}),
          ...(from !== undefined ? { from } : {}),
        },
        process.env,
        (line) => console.log(line),
      );
    }
    case "learn": {
      const config = option(args, "--config");
      const spam = flag(args, "--spam");
      const ham = flag(args, "--ham");
      if (spam === ham) throw new UsageError("learn needs exactly one of --spam or --ham");
      if (args.length === 0 || args.some((a) => a.startsWith("--")))
        throw new UsageError("learn needs one or more message files or directories");
      const { learnFiles } = await import("./learn-command.js");
      return learnFiles({ configFile: config, label: spam ? "spam" : "ham", paths: args }, process.env, (line) =>
        console.log(line),
      );
    }
    case "rules": {
      const [verb, file, ...extra] = args;
      if (verb !== "check" || !file || extra.length > 0) throw new UsageError("rules check FILE.csv");
      const { checkRulesFile } = await import("./rules-command.js");
      return checkRulesFile(PROJECT_DIR, file, (line) => console.log(line));
    }
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

// Before any command's work: the flags are the process's (v8-tuning.ts). serve, scan and learn
// parse messages by the thousand; the others run no differently.
tuneV8();
main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`moat: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (
      error instanceof GatewayConfigError ||
      error instanceof SettingsError ||
      error instanceof CertificateError
    ) {
      console.error(`moat: ${error.message}`);
      process.exitCode = 1;
    } else {
      const err = error as NodeJS.ErrnoException;
      console.error(
        `moat: ${err.code === "EADDRINUSE" ? `address in use: ${err.message}` : (err.stack ?? String(error))}`,
      );
      process.exitCode = 1;
    }
  },
);
