/**
 * Banned attachments: by the policy's extensions (`policy.bannedExtensions`) AND by true type
 * (magic bytes: an .exe renamed .pdf is still an exe), for attachments and for every file
 * inside zip archives (archive.ts), plus the disguises: a double extension ending in a banned
 * one (`invoice.pdf.exe`, `scan.pdf   .js`) and a right-to-left override character in the name
 * (`photo\u202Egpj.exe` shows as `photoexe.jpg`).
 *
 * An archive that cannot be inspected (encrypted, too deep, a decompression bomb, rar/7z, a
 * broken zip) is banned with that reason: what cannot be looked at cannot be let through
 * unseen. Rules or policy decide what happens next.
 */
import { inspectZip } from "./archive";
import { ARCHIVE_KEEP_MAX_BYTES } from "./message";
import { TYPE_EXTENSIONS, type TrueType, detectType } from "./file-types";
import type { Filter, Finding } from "./types";

const RTL_OVERRIDE = /[\u202e\u202d\u200f]/;

function extensionOf(name: string): string {
  const match = /\.([a-z0-9]{1,16})\s*$/i.exec(name);
  return match?.[1]?.toLowerCase() ?? "";
}

export function createAttachmentFilter(options: { readonly bannedExtensions: readonly string[] }): Filter {
  const banned = new Set(options.bannedExtensions.map((e) => e.toLowerCase()));
  const typeBanned = (type: TrueType | undefined) =>
    type !== undefined && type !== "zip" && TYPE_EXTENSIONS[type].some((e) => banned.has(e));

  function checkName(path: string, name: string, type: TrueType | undefined): Finding | undefined {
    const extension = extensionOf(name);
    if (RTL_OVERRIDE.test(name))
      return {
        detector: "attachments",
        category: "banned",
        symbol: "RTL_OVERRIDE",
        detail: `${path}: a right-to-left override character hides the real extension`,
      };
    if (banned.has(extension)) {
      const double = /\.([a-z0-9]{2,5})\s*\.[a-z0-9]{1,16}\s*$/i.exec(name);
      return {
        detector: "attachments",
        category: "banned",
        symbol: double ? "DOUBLE_EXTENSION" : "BANNED_EXTENSION",
        detail: double
          ? `${path}: double extension .${double[1]}.${extension}`
          : `${path}: .${extension} is banned by policy`,
      };
    }
    if (typeBanned(type))
      return {
        detector: "attachments",
        category: "banned",
        symbol: "BANNED_TRUE_TYPE",
        detail: `${path}: really ${type} (by its content)${extension ? `, named .${extension}` : ""}`,
      };
    return undefined;
  }

  return {
    name: "attachments",
    async run(message) {
      const findings: Finding[] = [];
      for (const attachment of message.parsed.attachments) {
        const name = attachment.filename ?? "(unnamed)";
        const type = detectType(attachment.head);
        const finding = checkName(name, name, type);
        if (finding) findings.push(finding);
        const isArchive = type === "zip" && !/\.(docx|xlsx|pptx|odt|ods|odp|epub)$/i.test(name);
        if (isArchive && !attachment.content) {
          findings.push({
            detector: "attachments",
            category: "banned",
            symbol: "ARCHIVE_UNINSPECTABLE",
            detail: `${name}: archive larger than ${ARCHIVE_KEEP_MAX_BYTES / 1024 / 1024} MB (not inspected)`,
          });
        } else if (isArchive && attachment.content) {
          const report = await inspectZip(attachment.content, name);
          for (const entry of report.entries) {
            const inner = checkName(entry.path, entry.name, entry.type);
            if (inner) findings.push(inner);
          }
          if (report.uninspectable)
            findings.push({
              detector: "attachments",
              category: "banned",
              symbol: "ARCHIVE_UNINSPECTABLE",
              detail: report.uninspectable,
            });
        } else if (type === "rar" || type === "7z") {
          findings.push({
            detector: "attachments",
            category: "banned",
            symbol: "ARCHIVE_UNINSPECTABLE",
            detail: `${name}: ${type} archive (not inspected)`,
          });
        }
      }
      return { findings };
    },
  };
}
