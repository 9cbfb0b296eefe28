/**
 * The scan thread (thread-scanner.ts has the why): builds the scanner from the gatewayConfig it
 * was started with, follows each message as the gateway's thread reports it arriving, and sends
 * back the verdict. It opens its own connection to the Bayes database (SQLite WAL allows the
 * gateway's thread to learn into it meanwhile) and keeps its own DNS cache.
 */
import "./scan-thread-id"; // first: the thread's id for loopCpu, before the detectors load
import { parentPort, workerData } from "node:worker_threads";
import type { GatewayConfig } from "../config";
import { type ArrivingMessage, arrivingMessage } from "../queue/arriving";
import { learnMessage } from "./bayes";
import { createScannerFromConfig, openBayesStoreFor } from "./index";
import type { FromScanThread, ToScanThread } from "./thread-scanner";
import { perTurn } from "./turn-batches";
import type { PeopleDirectory } from "./types";

const port = parentPort;
if (!port) throw new Error("scan-thread.ts runs as a worker thread (thread-scanner.ts starts it)");
const { config } = workerData as { config: GatewayConfig };
const bayes = openBayesStoreFor(config);
const scanner = createScannerFromConfig(config, bayes ? { bayes } : {});
const arriving = new Map<number, ArrivingMessage>();
let directory: PeopleDirectory | undefined;

/** The answers of this event-loop turn, posted as one batch at its end. */
const reply = perTurn<FromScanThread>((answers) => port.postMessage(answers));

port.on("message", (batch: readonly ToScanThread[]) => {
  for (const m of batch) handle(m);
});

function handle(m: ToScanThread): void {
  switch (m.t) {
    case "people": {
      const people = m.people;
      directory = { people: () => people };
      return;
    }
    case "scan": {
      // Without a file every chunk comes with its bytes, so all are held.
      const message = m.file
        ? arrivingMessage(m.file.path, m.file.offset, m.file.memoryLimit)
        : arrivingMessage("", 0, Number.POSITIVE_INFINITY);
      arriving.set(m.id, message);
      scanner
        .scan({ ...m.input, source: message.source, ...(m.withDirectory && directory ? { directory } : {}) })
        .then(
          (verdict) => reply({ t: "verdict", id: m.id, verdict }),
          (error: Error) => reply({ t: "error", id: m.id, message: error.message }),
        )
        .finally(() => {
          arriving.delete(m.id);
          // A reader still waiting for more (the scan failed early) ends now, closing its file.
          message.fail(new Error("the verdict is done"));
        });
      return;
    }
    case "learn": {
      const raw = Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength);
      (bayes ? learnMessage(bayes, raw, m.label) : Promise.reject(new Error("Bayes is off"))).then(
        (outcome) => reply({ t: "learned", id: m.id, outcome }),
        (error: Error) => reply({ t: "error", id: m.id, message: error.message }),
      );
      return;
    }
    case "chunk":
      arriving.get(m.id)?.appended(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
      return;
    case "inFile":
      arriving.get(m.id)?.appendedInFile(m.length);
      return;
    case "end":
      arriving.get(m.id)?.finish();
      return;
    case "fail":
      arriving.get(m.id)?.fail(new Error(m.message));
      return;
  }
}
