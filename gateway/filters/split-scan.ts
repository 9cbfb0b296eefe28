/**
 * A faster way through the plain body lines of a message for mailsplit's splitter, the line
 * splitter under mailparser (@zone-eu/mailsplit 5.4.30, pinned through mailparser 3.14.2: this
 * file drives its internals).
 *
 * The splitter looks at every byte of the message in a JavaScript loop for the line ends, and
 * hands every line to its line handler, which allocates the line and an object for it, checks it
 * for a MIME boundary, and extends the run of body bytes the line belongs to. A 25 MB attachment
 * is 340,000 lines: the splitter was the largest item of the gateway's CPU during its accept
 * (bench/large-message.ts, profiled), and the whole parse of it took about 120 ms of CPU in
 * memory (36 ms with this). Yet in a part's body a line can only change anything if it may be a
 * boundary, and a boundary line starts with "--" (after the line end before it, which the
 * splitter holds back and joins to it).
 *
 * So a chunk that arrives in a part's body, and whose every complete line (the first joined to
 * what is held from the chunk before) starts with no "-", is handled here: its lines found with
 * Buffer.indexOf, and what the splitter's own loop does with such a chunk done at once — the line
 * that completes what was held handed out as a piece of its own, one piece from there to the last
 * line end (less that line end in a part of a multipart: it belongs to a boundary that may
 * follow), the rest held, the limit on a held line applied, and the next chunk taken in a later
 * event-loop turn. Every other chunk (headers, a boundary or a line that may be one, no line end,
 * a line end split between two chunks, an overlong line cut short) goes to the splitter's own
 * function. test/gateway/split-scan.test.ts feeds both the same messages cut in many ways and
 * compares every piece that comes out.
 */
import type { Transform, TransformCallback } from "node:stream";

const LF = 0x0a;
const CR = 0x0d;
const DASH = 0x2d;
/** The splitter's state while it reads a part's body (mailsplit's BODY). */
const BODY = 0x02;

interface SplitterNode {
  multipart?: string | false;
  parentNode?: unknown;
}

/** The splitter's state and methods used here (internal to mailsplit 5.4.30). */
interface SplitterInternals {
  state: number;
  node: SplitterNode;
  lineChunks: Buffer[];
  lineLength: number;
  pendingLineTruncated: boolean;
  hasFailed: boolean;
  push(piece: unknown): boolean;
  appendPendingLine(chunk: Buffer): void;
  enforcePendingLineLimit(): unknown;
  _transform(chunk: Buffer, encoding: BufferEncoding, done: TransformCallback): void;
}

/**
 * Whether the line from `start` may be a MIME boundary: mailsplit's checkBoundary looks at it
 * only if it starts with "--" after a line end held from the line before (CR LF, or a bare CR or
 * LF), and then looks further. A bare line end at `start` makes the next line's first byte count.
 */
function mayDelimit(line: Buffer, start: number): boolean {
  let at = start;
  if (line[at] === CR || line[at] === LF) {
    at++;
    if (line[start] === CR && line[at] === LF) at++;
  }
  return line[at] === DASH;
}

/**
 * Makes `splitter` (mailparser's, once it is built) take plain body chunks the fast way.
 * Every other chunk goes to the splitter's own _transform.
 */
export function fastBodyLines(splitter: Transform): void {
  const self = splitter as unknown as SplitterInternals;
  const own = self._transform;
  self._transform = function (this: SplitterInternals, chunk, encoding, done) {
    // (Too many parts are reported at the first line of the one too many, a header line: the
    // splitter's own function reads it.)
    if (this.state !== BODY || this.pendingLineTruncated || this.hasFailed)
      return own.call(this, chunk, encoding, done);
    const firstEnd = chunk.indexOf(LF) + 1; // after the first line end, 0 if there is none
    // A line end split between this chunk and the last is the splitter's own case.
    if (firstEnd <= 1) return own.call(this, chunk, encoding, done);
    // The first line, with what is held of it from the chunks before.
    const held = this.lineLength > 0;
    const first = held
      ? Buffer.concat([...this.lineChunks, chunk.subarray(0, firstEnd)], this.lineLength + firstEnd)
      : chunk;
    if (mayDelimit(first, 0)) return own.call(this, chunk, encoding, done);
    let end = firstEnd; // after the last line end
    for (let lf = chunk.indexOf(LF, end); lf >= 0; lf = chunk.indexOf(LF, end)) {
      if (mayDelimit(chunk, end)) return own.call(this, chunk, encoding, done);
      end = lf + 1;
    }
    const type = this.node.multipart ? "data" : "body";
    // The line end before a boundary is the boundary's, so a part of a multipart keeps its last
    // one back (the splitter's trimBodyLineEnd and checkTrailingLinebreak).
    const trims = !this.node.multipart && Boolean(this.node.parentNode);
    /** `to`, less the line end before it when the part keeps it back, not before `from`. */
    const trimmed = (buffer: Buffer, from: number, to: number): number => {
      if (!trims || to <= from || buffer[to - 1] !== LF) return to;
      return to - 1 > from && buffer[to - 2] === CR ? to - 2 : to - 1;
    };
    let start = 0; // where the run of this chunk's whole lines starts
    if (held) {
      // The splitter hands out the line that completes the held bytes as a piece of its own.
      this.lineChunks = [];
      this.lineLength = 0;
      const firstLength = trimmed(first, 0, first.length);
      start = firstEnd - (first.length - firstLength);
      if (firstLength > 0) this.push({ node: this.node, type, value: first.subarray(0, firstLength) });
    }
    let rest = start;
    if (end > firstEnd || !held) {
      rest = trimmed(chunk, start, end);
      if (rest > start) this.push({ node: this.node, type, value: chunk.subarray(start, rest) });
    }
    if (rest < chunk.length) this.appendPendingLine(chunk.subarray(rest));
    // In a body the limit on the held line sends a long one on as body: it fails only in headers.
    this.enforcePendingLineLimit();
    // The next chunk in a later turn, as the splitter's own function does: a large message read
    // from memory or a file still lets other sessions run between its chunks.
    setImmediate(done);
  };
}
