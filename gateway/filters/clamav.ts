/**
 * Malware scanning by ClamAV's clamd, INSTREAM over TCP (MOAT_CLAMD host:port): the message
 * goes in chunks of `<uint32 length><bytes>`, a zero length ends it, clamd answers
 * `stream: OK` or `stream: <signature> FOUND`. The whole MIME message is sent, streamed from the
 * spool as the socket takes it; clamd decodes MIME, archives and encodings itself.
 *
 * A message larger than clamd's StreamMaxLength is reported as not scanned (a reason, not a
 * failure: set StreamMaxLength at least to the gateway's size limit). Anything else that goes
 * wrong — refused, reset, an ERROR reply, no answer in CLAMD_TIMEOUT_MS — is
 * EngineUnavailableError.
 */
import { connect } from "node:net";
import type { Readable } from "node:stream";
import type { Filter } from "./types";
import { EngineUnavailableError } from "./types";

const CLAMD_TIMEOUT_MS = 60_000;
const CHUNK_BYTES = 64 * 1024;

export type ClamdAnswer = { kind: "clean" } | { kind: "found"; signature: string } | { kind: "too-large" };

export function scanWithClamd(target: { host: string; port: number }, data: Readable): Promise<ClamdAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(target.port, target.host);
    let reply = "";
    const fail = (message: string) => {
      socket.destroy();
      reject(new EngineUnavailableError("clamd", `${target.host}:${target.port}: ${message}`));
    };
    socket.setTimeout(CLAMD_TIMEOUT_MS, () => fail(`no answer within ${CLAMD_TIMEOUT_MS} ms`));
    socket.on("error", (error) => fail(error.message));
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString("latin1");
      if (!reply.includes("\0")) return;
      socket.end();
      const text = reply.slice(0, reply.indexOf("\0")).trim();
      if (/^stream: OK$/.test(text)) resolve({ kind: "clean" });
      else if (/size limit exceeded/i.test(text)) resolve({ kind: "too-large" });
      else {
        const found = /^stream: (.+) FOUND$/.exec(text);
        if (found?.[1]) resolve({ kind: "found", signature: found[1] });
        else fail(`unexpected reply ${JSON.stringify(text.slice(0, 120))}`);
      }
    });
    socket.on("close", () => {
      if (!reply.includes("\0")) fail("connection closed without an answer");
    });
    const send = async () => {
      socket.write("zINSTREAM\0");
      for await (const piece of data as AsyncIterable<Buffer>) {
        for (let offset = 0; offset < piece.length; offset += CHUNK_BYTES) {
          const chunk = piece.subarray(offset, offset + CHUNK_BYTES);
          const length = Buffer.alloc(4);
          length.writeUInt32BE(chunk.length);
          socket.write(length);
          if (!socket.write(chunk))
            await new Promise((resume) => {
              socket.once("drain", resume);
              socket.once("close", resume);
            });
          if (socket.destroyed) return; // clamd answered early (size limit) or failed
        }
      }
      socket.write(Buffer.alloc(4));
    };
    socket.on("connect", () => {
      send()
        .catch((error: Error) => fail(`reading the message: ${error.message}`))
        .finally(() => data.destroy());
    });
  });
}

export function createClamavFilter(target: { readonly host: string; readonly port: number }): Filter {
  return {
    name: "clamav",
    async run(message) {
      const answer = await scanWithClamd(target, message.source.open());
      switch (answer.kind) {
        case "clean":
          return { findings: [{ detector: "clamav", symbol: "CLEAN", detail: "ClamAV: no malware found" }] };
        case "too-large":
          return {
            findings: [
              {
                detector: "clamav",
                symbol: "NOT_SCANNED_TOO_LARGE",
                detail: "ClamAV did not scan the message: larger than clamd's StreamMaxLength",
              },
            ],
          };
        case "found":
          return {
            findings: [
              {
                detector: "clamav",
                category: "malware",
                symbol: answer.signature,
                detail: `ClamAV found ${answer.signature}`,
              },
            ],
          };
      }
    },
  };
}
