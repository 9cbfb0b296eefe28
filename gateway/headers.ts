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

/** Where the header block in `head` ends (the line break before its empty line), -1 if not in it. */
function headerBlockEnd(head: Buffer): number {
  for (let i = head.indexOf(LF); i >= 0; i = head.indexOf(LF, i + 1)) {
    const next = head[i + 1];
    if (next === LF || (next === CR && head[i + 2] === LF)) return i > 0 && head[i - 1] === CR ? i - 1 : i;
  }
  return -1;
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
