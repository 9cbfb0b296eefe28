/**
 * Reading the header block of a message from its first bytes (RFC 5322 §2.2): where it
 * ends, and the values of a field, unfolded. Used on the spool's captured head, so it never
 * needs the whole message.
 */

/** Header block of a message: everything before the first empty line, CRLF line ends. */
export function headerBlock(head: string): string {
  const end = head.search(/\r?\n\r?\n/);
  return (end < 0 ? head : head.slice(0, end)).replace(/\r?\n/g, "\r\n");
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Where the header block ends in `chunk`: the index of the LF of its empty line (LF LF, or
 * LF CR LF), looking back into `before` (the last bytes before the chunk, when a message comes
 * in pieces); -1 if not in it.
 */
export function emptyLineEnd(chunk: Buffer, before: readonly number[] = []): number {
  const at = (i: number) => (i >= 0 ? chunk[i] : before[before.length + i]);
  for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
    const previous = at(i - 1);
    if (previous === LF || (previous === CR && at(i - 2) === LF)) return i;
  }
  return -1;
}

/** Where the header block in `head` ends (the line break before its empty line), -1 if not in it. */
function headerBlockEnd(head: Buffer): number {
  const emptyLine = emptyLineEnd(head);
  if (emptyLine < 0) return -1;
  const lastLineEnd = head[emptyLine - 1] === CR ? emptyLine - 2 : emptyLine - 1; // its LF
  return lastLineEnd > 0 && head[lastLineEnd - 1] === CR ? lastLineEnd - 1 : lastLineEnd;
}

/**
 * Values of a header field (case-insensitive name), or undefined when the block did not end
 * within `head`. Only the header block is turned into a string, not the body after it.
 */
export function headerValues(head: Buffer, name: string): string[] | undefined {
  const end = headerBlockEnd(head);
  if (end < 0) return undefined;
  const unfolded = head.toString("latin1", 0, end).replace(/\r?\n[ \t]+/g, " ");
  const wanted = `${name.toLowerCase()}:`;
  return unfolded
    .split(/\r?\n/)
    .filter((line) => line.toLowerCase().startsWith(wanted))
    .map((line) => line.slice(wanted.length).trim());
}
