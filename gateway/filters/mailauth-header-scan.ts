/**
 * mailauth reads a message for DKIM and ARC through one class (MessageParser, under its verifier
 * and its signer), which looks for the end of the header block one byte at a time and copies an
 * array of the last four bytes for every byte it looks at. That was a third of all the gateway
 * allocated per message (about 180 KB of garbage for a 2 KB header block; sampling heap profile
 * at 200 msgs/s of the benchmarks' mix), and with it a third of its young-generation garbage
 * collections. Importing this module replaces that one method with one that finds the same end
 * with `Buffer.indexOf` and otherwise does what it did: the same header chunks, the same headers
 * handed on, the same body chunks (test/gateway/mailauth-header-scan.test.ts runs both on the
 * same messages cut at every byte).
 */
import messageParserModule from "mailauth/lib/dkim/message-parser.js";
import tools from "mailauth/lib/tools.js";
import { emptyLineEnd } from "../headers";

type Parser = InstanceType<typeof messageParserModule.MessageParser>;

async function processChunk(this: Parser, input: Buffer): Promise<void> {
  if (!input || !input.length) return;
  let chunk = input;
  if (this.state === "header") {
    const end = emptyLineEnd(chunk, this.stateBytes);
    const seen = end < 0 ? chunk : chunk.subarray(0, end + 1);
    this.stateBytes = [...this.stateBytes, ...seen.subarray(Math.max(0, seen.length - 4))].slice(-4);
    if (end >= 0) {
      this.state = "body";
      this.headerChunks.push(end === chunk.length - 1 ? chunk : chunk.subarray(0, end + 1));
      this.headers = tools.parseHeaders(Buffer.concat(this.headerChunks));
      await this.messageHeaders(this.headers);
      if (end === chunk.length - 1) return;
      chunk = chunk.subarray(end + 1);
    }
  }
  if (this.state !== "body") {
    this.headerChunks.push(chunk);
    return;
  }
  await this.nextChunk(chunk);
}

const ORIGINAL = Symbol.for("moat.mailauth.processChunk");
const prototype: Parser & { [ORIGINAL]?: Parser["processChunk"] } = messageParserModule.MessageParser.prototype;
prototype[ORIGINAL] ??= prototype.processChunk; // a second copy of this module must not keep ours as theirs
/** mailauth's own method, kept for the test that compares the two. */
export const mailauthProcessChunk = prototype[ORIGINAL];
prototype.processChunk = processChunk;
