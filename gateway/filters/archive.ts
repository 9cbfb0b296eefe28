/**
 * Looks inside zip archives (and zips inside zips) for attachment checks, without trusting
 * them: entries are listed from the central directory (yauzl, which validates it), only the
 * first bytes of each entry are inflated to learn its true type, and a nested zip is inflated
 * whole only within ARCHIVE_MAX_ENTRY_BYTES.
 *
 * Reported as uninspectable (its own reason) rather than guessed at: an encrypted entry, nesting
 * deeper than ARCHIVE_MAX_DEPTH, more than ARCHIVE_MAX_ENTRIES entries, a declared size over
 * ARCHIVE_MAX_TOTAL_BYTES or a compression ratio over ARCHIVE_MAX_RATIO (a decompression bomb),
 * or a zip that does not parse.
 */
import yauzl from "yauzl";
import { type TrueType, detectType } from "./file-types";

export const ARCHIVE_MAX_DEPTH = 3;
export const ARCHIVE_MAX_ENTRIES = 1_000;
export const ARCHIVE_MAX_TOTAL_BYTES = 200 * 1024 * 1024;
export const ARCHIVE_MAX_ENTRY_BYTES = 25 * 1024 * 1024;
/** Text compresses ~10:1, office files less; 100:1 on a large entry is a bomb's signature. */
export const ARCHIVE_MAX_RATIO = 100;
const RATIO_MIN_BYTES = 1024 * 1024;
const SNIFF_BYTES = 64;

export interface ArchiveEntry {
  /** Path inside the archive, with outer archives: `outer.zip/inner.zip/run.exe`. */
  readonly path: string;
  readonly name: string;
  readonly type: TrueType | undefined;
}

export interface ArchiveReport {
  readonly entries: readonly ArchiveEntry[];
  /** Why (part of) the archive could not be inspected, if so. */
  readonly uninspectable?: string;
}

function openZip(buffer: Buffer): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.fromBuffer(buffer, { lazyEntries: true, validateEntrySizes: true, strictFileNames: false }, (error, zip) =>
      error || !zip ? reject(error ?? new Error("no zip")) : resolve(zip),
    ),
  );
}

function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (error, stream) => {
      if (error || !stream) return reject(error ?? new Error("no stream"));
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        bytes += chunk.length;
        if (bytes >= limit) {
          stream.destroy();
          resolve(Buffer.concat(chunks).subarray(0, limit));
        }
      });
      stream.on("end", () => resolve(Buffer.concat(chunks)));
      stream.on("error", reject);
    });
  });
}

export async function inspectZip(buffer: Buffer, label: string, depth = 1): Promise<ArchiveReport> {
  if (depth > ARCHIVE_MAX_DEPTH)
    return { entries: [], uninspectable: `${label}: archives nested deeper than ${ARCHIVE_MAX_DEPTH}` };
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(buffer);
  } catch (error) {
    return { entries: [], uninspectable: `${label}: not a readable zip (${(error as Error).message})` };
  }
  const entries: ArchiveEntry[] = [];
  let uninspectable: string | undefined;
  let total = 0;
  let count = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on("error", reject);
      zip.on("end", resolve);
      zip.on("entry", (entry: yauzl.Entry) => {
        void (async () => {
          count++;
          const path = `${label}/${entry.fileName}`;
          const name = entry.fileName.split("/").pop() ?? entry.fileName;
          total += entry.uncompressedSize;
          if (count > ARCHIVE_MAX_ENTRIES) uninspectable = `${label}: more than ${ARCHIVE_MAX_ENTRIES} entries`;
          else if (total > ARCHIVE_MAX_TOTAL_BYTES)
            uninspectable = `${label}: unpacks to more than ${ARCHIVE_MAX_TOTAL_BYTES / 1024 / 1024} MB (decompression bomb)`;
          else if (
            entry.uncompressedSize > RATIO_MIN_BYTES &&
            entry.uncompressedSize / Math.max(1, entry.compressedSize) > ARCHIVE_MAX_RATIO
          )
            uninspectable = `${path}: compressed ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))}:1 (decompression bomb)`;
          else if ((entry.generalPurposeBitFlag & 0x1) !== 0) uninspectable = `${path}: encrypted`;
          if (uninspectable) {
            zip.close();
            return resolve();
          }
          if (entry.fileName.endsWith("/")) return zip.readEntry();
          const head = await readEntry(zip, entry, SNIFF_BYTES);
          const type = detectType(head);
          entries.push({ path, name, type });
          if (type === "zip" && !/\.(docx|xlsx|pptx|odt|ods|odp|jar|apk|epub)$/i.test(name)) {
            if (entry.uncompressedSize > ARCHIVE_MAX_ENTRY_BYTES) {
              uninspectable = `${path}: nested archive larger than ${ARCHIVE_MAX_ENTRY_BYTES / 1024 / 1024} MB`;
              zip.close();
              return resolve();
            }
            const inner = await inspectZip(await readEntry(zip, entry, ARCHIVE_MAX_ENTRY_BYTES), path, depth + 1);
            entries.push(...inner.entries);
            if (inner.uninspectable) {
              uninspectable = inner.uninspectable;
              zip.close();
              return resolve();
            }
          } else if (type === "rar" || type === "7z") {
            uninspectable = `${path}: ${type} archive (not inspected)`;
            zip.close();
            return resolve();
          }
          zip.readEntry();
        })().catch(reject);
      });
      zip.readEntry();
    });
  } catch (error) {
    uninspectable ??= `${label}: broken zip (${(error as Error).message})`;
  }
  return uninspectable ? { entries, uninspectable } : { entries };
}
