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

/** Values of a header field (case-insensitive name), or undefined when the block did not end within `head`. */
export function headerValues(head: Buffer, name: string): string[] | undefined {
  const text = head.toString("latin1");
  const end = text.search(/\r?\n\r?\n/);
  if (end < 0) return undefined;
  const unfolded = text.slice(0, end).replace(/\r?\n[ \t]+/g, " ");
  const wanted = `${name.toLowerCase()}:`;
  return unfolded
    .split(/\r?\n/)
    .filter((line) => line.toLowerCase().startsWith(wanted))
    .map((line) => line.slice(wanted.length).trim());
}
