/**
 * `moat scan --config FILE MESSAGE.eml...`: the verdict for each message, without delivering:
 * one JSON object per line, `{file, category, action, reasons, rule}` — to backtest a policy or
 * rules change on real mail before deploying it.
 *
 * The envelope of a saved message is not in the file: the sender comes from Return-Path (else
 * From), the client IP, HELO and name from the topmost Received header that names the IP
 * (else 127.0.0.1; the name as the receiving server recorded it, `from helo (name [ip])`, none
 * when it wrote "unknown"), the recipients from To/Cc. `--ip`, `--helo` and `--from` set them
 * explicitly (with `--ip` the client has no name).
 * The directory is the config's spreadsheet users plus the last synced state in its data
 * directory, when there is one (impersonation compares display names against it).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { resolveConfig } from "./config-source";
import { type DirectoryRecord, createDirectory, recordsFromStaticUsers } from "./directory/directory";
import type { Env } from "./env";
import { createScannerFromConfig, openBayesStoreFor } from "./filters";
import { createDirectoryStateStore } from "./store/directory-state";
import { bufferSource } from "./filters/source";
import { headerBlock } from "./headers";

export interface ScanOptions {
  readonly configFile: string | undefined;
  readonly files: readonly string[];
  readonly ip?: string;
  readonly helo?: string;
  readonly from?: string;
}

function unfoldedHeaders(raw: Buffer): string {
  return headerBlock(raw.subarray(0, 256 * 1024).toString("latin1")).replace(/\r\n[ \t]+/g, " ");
}

export function envelopeFromHeaders(raw: Buffer): {
  mailFrom: string;
  clientIp: string;
  clientName?: string;
  helo: string;
  rcptTo: string[];
} {
  const headers = unfoldedHeaders(raw).split("\r\n");
  const value = (name: string) =>
    headers.filter((h) => h.toLowerCase().startsWith(`${name}:`)).map((h) => h.slice(name.length + 1).trim());
  const addressIn = (text: string) =>
    /<([^<>\s]*)>/.exec(text)?.[1] ?? /([^\s<>,;"]+@[^\s<>,;"]+)/.exec(text)?.[1] ?? "";
  const mailFrom = addressIn(value("return-path")[0] ?? "") || addressIn(value("from")[0] ?? "");
  let clientIp = "127.0.0.1";
  let helo = "";
  let clientName: string | undefined;
  for (const received of value("received")) {
    const match = /from\s+(\S+)\s+\(([^)]*?)\[(?:IPv6:)?([0-9a-f:.]+)\]/i.exec(received);
    if (match?.[3]) {
      helo = match[1] ?? "";
      clientIp = match[3];
      const name = (match[2] ?? "").trim().split(/\s+/)[0] ?? "";
      if (/^[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\.?$/i.test(name)) clientName = name.replace(/\.$/, "");
      break;
    }
  }
  const rcptTo = [...value("to"), ...value("cc")]
    .flatMap((v) => v.split(","))
    .map(addressIn)
    .filter(Boolean);
  return { mailFrom, clientIp, ...(clientName ? { clientName } : {}), helo, rcptTo };
}

export async function scanFiles(options: ScanOptions, env: Env, print: (line: string) => void): Promise<number> {
  const { config } = resolveConfig(options.configFile, env);
  const bayes = openBayesStoreFor(config);
  const scanner = createScannerFromConfig(config, bayes ? { bayes } : {});
  const records: DirectoryRecord[] = [...recordsFromStaticUsers(config.directory.users)];
  try {
    const saved = createDirectoryStateStore(join(config.dataDir, "directory")).load();
    if (saved) records.push(...saved.users.records.values(), ...saved.groups.records.values());
  } catch {
    // no readable synced directory: the spreadsheet users alone
  }
  const directory = createDirectory(records);
  let failures = 0;
  for (const file of options.files) {
    let raw: Buffer;
    try {
      raw = readFileSync(file);
    } catch (error) {
      print(JSON.stringify({ file, error: (error as Error).message }));
      failures++;
      continue;
    }
    if (raw.subarray(0, 5).toString("latin1") === "From ") raw = raw.subarray(raw.indexOf(0x0a) + 1); // mbox line
    const envelope = envelopeFromHeaders(raw);
    const verdict = await scanner.scan({
      mailFrom: options.from ?? envelope.mailFrom,
      rcptTo: envelope.rcptTo,
      clientIp: options.ip ?? envelope.clientIp,
      ...(options.ip === undefined && envelope.clientName ? { clientName: envelope.clientName } : {}),
      helo: options.helo ?? envelope.helo,
      tls: false,
      direction: "inbound",
      source: bufferSource(raw),
      directory,
    });
    print(
      JSON.stringify({
        file,
        category: verdict.category,
        action: verdict.action,
        reasons: verdict.reasons,
        rule: verdict.rule
          ? { kind: verdict.rule.kind, scope: verdict.rule.scope, file: verdict.rule.file, line: verdict.rule.line }
          : null,
      }),
    );
  }
  bayes?.close();
  return failures > 0 ? 1 : 0;
}
