/**
 * The scan of the message data for its end and for escape dots (gateway/inbound/data-scan.ts)
 * against smtp-server's own: the same data, cut into chunks at every kind of place (one byte, a
 * few, socket-sized reads, a 4-byte hold-back straddling "\r\n.\r\n"), gives the same message
 * bytes, the same byte count, the same end, and the same commands after it. Where the end is
 * decides whether pipelined commands are read as mail or as commands (SMTP smuggling), so the
 * data is made of the pieces that matter there: dots, bare CR and LF, "\r\n.\r\n", "\n..".
 */
import { SMTPStream } from "smtp-server/lib/smtp-stream.js";
import { describe, expect, it } from "vitest";
import { installDataScan, smtpServerFeedDataStream } from "../../gateway/inbound/data-scan";
import { cutRandomly as cut, randomPieces, seededRandom } from "../helpers/random";

installDataScan();

interface Outcome {
  data: string;
  dataBytes: number;
  ended: boolean;
  commands: string[];
}

/** Writes `chunks` into an SMTPStream in data mode; with `original`, smtp-server's own scan. */
async function feed(chunks: readonly Buffer[], original: boolean): Promise<Outcome> {
  const stream = new SMTPStream();
  if (original)
    (stream as unknown as { _feedDataStream: typeof smtpServerFeedDataStream })._feedDataStream =
      smtpServerFeedDataStream;
  const commands: string[] = [];
  // Called without a continuation for a last line without its line break (at the stream's end).
  stream.oncommand = (command: Buffer, next?: () => void) => {
    commands.push(command.toString("latin1"));
    next?.();
  };
  const dataStream = stream.startDataMode();
  const data: Buffer[] = [];
  let ended = false;
  dataStream.on("data", (chunk: Buffer) => data.push(chunk));
  dataStream.on("end", () => {
    ended = true;
    stream.continue();
  });
  for (const chunk of chunks) await new Promise<void>((resolve) => stream.write(chunk, () => resolve()));
  await new Promise<void>((resolve) => stream.end(() => resolve()));
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return { data: Buffer.concat(data).toString("latin1"), dataBytes: stream.dataBytes, ended, commands };
}

const PIECES = [
  "a",
  "Hello, world",
  ".",
  "..",
  "...",
  "\r\n",
  "\n",
  "\r",
  "\r\n.\r\n",
  "\r\n..\r\n",
  "\r\n.",
  ".\r\n",
  "\n.\n",
  "\n..",
  "\r\n.x",
  "QUIT\r\n",
  "x".repeat(300),
];

function message(next: () => number): string {
  const text = randomPieces(next, PIECES);
  // Usually a proper end and a command after it; sometimes neither (the end is left to the pieces).
  return next() < 0.8 ? `${text}\r\n.\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n` : text;
}

async function same(chunks: readonly Buffer[]): Promise<void> {
  const [theirs, ours] = [await feed(chunks, true), await feed(chunks, false)];
  expect(ours).toEqual(theirs);
}

describe("the scan of the message data", () => {
  it("ends a message where smtp-server does and passes the same bytes, however the data is cut", async () => {
    const next = seededRandom(20261206);
    for (let n = 0; n < 1500; n++) {
      const text = message(next);
      await same(cut(text, next));
    }
  }, 120_000);

  it("finds the end held back across a chunk boundary, at every offset", async () => {
    const body = "Subject: hi\r\n\r\n" + "line of text\r\n".repeat(20);
    for (const tail of ["\r\n.\r\nQUIT\r\n", "\r\n..\r\n.\r\nQUIT\r\n", "\n.\r\n\r\n.\r\nQUIT\r\n"]) {
      const text = body + tail;
      for (let at = body.length - 8; at <= text.length; at++) {
        const bytes = Buffer.from(text, "latin1");
        await same([bytes.subarray(0, at), bytes.subarray(at)]);
      }
    }
    // The message's bytes: dot-stuffing undone, the end not in them, the command after it read.
    const outcome = await feed([Buffer.from(`${body}..dot\r\n.\r\nQUIT\r\n`, "latin1")], false);
    expect(outcome.data).toBe(`${body}.dot\r\n`);
    expect(outcome.ended).toBe(true);
    expect(outcome.commands).toEqual(["QUIT"]);
  }, 60_000);

  it("reads a large message in socket-sized chunks as smtp-server does", async () => {
    const next = seededRandom(7);
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++)
      lines.push(next() < 0.02 ? ".." + "y".repeat(40) : "z".repeat(Math.floor(next() * 76)));
    const text = `${lines.join("\r\n")}\r\n.\r\nQUIT\r\n`;
    const bytes = Buffer.from(text, "latin1");
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 65_536) chunks.push(bytes.subarray(at, at + 65_536));
    await same(chunks);
    const ours = await feed(chunks, false);
    expect(ours.data.length).toBeGreaterThan(700_000);
    expect(ours.commands).toEqual(["QUIT"]);
  }, 60_000);
});
