/**
 * A message delivered from the copy in memory (queue-file.ts heldMessage, bufferStream) is freed
 * by V8's young-generation collection once the SMTP client is done with it, not only by a full
 * collection. On Node 24 a buffer streamed with `Readable.from([buffer])` was not: every
 * message's copy piled up until the next full collection, and started it early (bench/RESULTS.md,
 * the BA session). In a file of its own, in a fresh process as the gateway's is: after the
 * streams of other tests in the same process, `Readable.from([buffer])` was not always kept.
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { heldMessage } from "../../gateway/queue/queue-file";
import { v8Collection, v8MinorCollection } from "../../gateway/queue/young-collection";

const MB = 1024 * 1024;
const MESSAGE_BYTES = 8 * MB;

const envelope = {
  id: "held-1",
  mailFrom: "a@outside.example",
  rcptTo: ["jo@acme.com"],
  receivedAt: new Date().toISOString(),
  client: { ip: "192.0.2.1", helo: "mx.outside.example", tls: false },
};

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("a message held in memory, delivered", () => {
  it("is freed by a young-generation collection once sent, not only by a full one", async () => {
    const collectYoung = v8MinorCollection();
    const collectAll = v8Collection();
    expect(collectYoung).toBeTypeOf("function");
    // What start-up left is not counted: a full collection, and a second one, which first
    // finishes the first's freeing of buffers (V8 does that beside the script).
    collectAll?.();
    collectAll?.();
    await turn();
    const before = process.memoryUsage().arrayBuffers;
    let whileSending = 0;
    // As the SMTP client sends it: piped into the connection's stream, which is done with it at the end.
    await (async () => {
      const message = heldMessage(envelope, undefined, Buffer.alloc(MESSAGE_BYTES, 0x44));
      let sent = 0;
      const connection = new Writable({
        write(chunk: Buffer, _encoding, done) {
          sent += chunk.length;
          whileSending = process.memoryUsage().arrayBuffers - before;
          done();
        },
      });
      message.openMessage().pipe(connection);
      await new Promise((resolve) => connection.on("finish", resolve));
      expect(sent).toBe(MESSAGE_BYTES);
    })();
    expect(whileSending).toBeGreaterThanOrEqual(MESSAGE_BYTES); // the measure sees the message at all
    await turn();
    collectYoung?.();
    collectYoung?.(); // finishes the first's freeing
    await turn();
    collectYoung?.();
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(MESSAGE_BYTES / 4);
  });
});
