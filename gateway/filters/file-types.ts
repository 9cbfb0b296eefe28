/**
 * What a file really is, from its first bytes (magic numbers), whatever its name says. Only
 * the types attachment policy cares about; anything else is undefined.
 */
export type TrueType =
  "exe" | "elf" | "macho" | "java-class" | "lnk" | "iso" | "zip" | "rar" | "7z" | "cab" | "ole2" | "pdf" | "gzip";

/** The extensions a true type goes by: a policy that bans any of them bans the type. */
export const TYPE_EXTENSIONS: Record<TrueType, readonly string[]> = {
  exe: ["exe", "dll", "scr", "com", "cpl", "sys", "ocx"],
  elf: ["elf", "so", "bin"],
  macho: ["app", "dylib"],
  "java-class": ["class", "jar"],
  lnk: ["lnk"],
  iso: ["iso", "img"],
  zip: ["zip"],
  rar: ["rar"],
  "7z": ["7z"],
  cab: ["cab"],
  ole2: ["doc", "xls", "ppt", "msi", "msg"],
  pdf: ["pdf"],
  gzip: ["gz", "tgz"],
};

const starts = (data: Buffer, bytes: readonly number[], offset = 0) =>
  data.length >= offset + bytes.length && bytes.every((b, i) => data[offset + i] === b);

export function detectType(data: Buffer): TrueType | undefined {
  if (starts(data, [0x4d, 0x5a])) return "exe";
  if (starts(data, [0x7f, 0x45, 0x4c, 0x46])) return "elf";
  if (starts(data, [0xcf, 0xfa, 0xed, 0xfe]) || starts(data, [0xfe, 0xed, 0xfa, 0xce])) return "macho";
  if (starts(data, [0xca, 0xfe, 0xba, 0xbe])) return "java-class";
  if (starts(data, [0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00])) return "lnk";
  if (starts(data, [0x50, 0x4b, 0x03, 0x04]) || starts(data, [0x50, 0x4b, 0x05, 0x06])) return "zip";
  if (starts(data, [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07])) return "rar";
  if (starts(data, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return "7z";
  if (starts(data, [0x4d, 0x53, 0x43, 0x46])) return "cab";
  if (starts(data, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return "ole2";
  if (starts(data, [0x25, 0x50, 0x44, 0x46])) return "pdf";
  if (starts(data, [0x1f, 0x8b])) return "gzip";
  if (starts(data, [0x43, 0x44, 0x30, 0x30, 0x31], 0x8001)) return "iso";
  return undefined;
}
