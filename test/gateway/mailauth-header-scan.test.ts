import messageParserModule from "mailauth/lib/dkim/message-parser.js";
import { describe, expect, it } from "vitest";
import { mailauthProcessChunk } from "../../gateway/filters/mailauth-header-scan";

/** mailauth's reader with what it hands on recorded: the headers (once) and the body chunks. */
class Recorder extends messageParserModule.MessageParser {
  seen: unknown[] = [];
  override async messageHeaders(headers: unknown) {
    this.seen.push(["headers", headers]);
  }
  override async nextChunk(chunk: Buffer) {
    this.seen.push(["body", chunk.toString("latin1")]);
  }
}

/** Feeds `pieces` through one processChunk; what it handed on, and where it stopped. */
async function run(processChunk: Recorder["processChunk"], pieces: readonly Buffer[]) {
  const parser = new Recorder();
  for (const piece of pieces) await processChunk.call(parser, piece);
  // Consecutive body chunks joined: where a body chunk is cut may differ, its bytes may not.
  const seen: unknown[] = [];
  for (const entry of parser.seen) {
    const last = seen[seen.length - 1] as [string, string] | undefined;
    const [kind, value] = entry as [string, string];
    if (kind === "body" && last?.[0] === "body") last[1] += value;
    else seen.push([kind, value]);
  }
  return { seen, state: parser.state, headerChunks: Buffer.concat(parser.headerChunks).toString("latin1") };
}

const MESSAGES = [
  "From: a@b.example\r\nSubject: hi\r\nDKIM-Signature: v=1; a=rsa-sha256; d=b.example;\r\n b=abc\r\n\r\nbody line\r\n\r\nmore\r\n",
  "From: a@b.example\nSubject: bare line feeds\n\nbody\n",
  "From: a@b.example\r\nSubject: mixed\n\r\nbody\r\n",
  "From: a@b.example\r\nSubject: no body at all\r\n\r\n",
  "From: a@b.example\r\nSubject: never ends\r\n",
  "\r\n\r\nFrom: an empty line first\r\n\r\nbody",
  "\n\nbody right away",
  "Subject: x\r\n\r\r\n\r\nstray CR",
];

describe("mailauth's header scan, replaced", () => {
  it.each(MESSAGES.map((m, i) => [i, m] as const))(
    "hands on what mailauth's own scan does, for message %i cut at every byte, byte by byte, and whole",
    async (_, text) => {
      const message = Buffer.from(text, "latin1");
      const cuts: Buffer[][] = [[message], [...message].map((b) => Buffer.from([b]))];
      for (let at = 1; at < message.length; at++) cuts.push([message.subarray(0, at), message.subarray(at)]);
      for (const pieces of cuts) {
        const fast = await run(messageParserModule.MessageParser.prototype.processChunk, pieces);
        expect(fast).toEqual(await run(mailauthProcessChunk!, pieces));
      }
      // And it is the replacement that ran.
      expect(messageParserModule.MessageParser.prototype.processChunk).not.toBe(mailauthProcessChunk);
    },
  );
});
