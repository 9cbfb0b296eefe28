// A scan thread entry for test/gateway/thread-scanner.test.ts: the real scan thread, except
// that a message from crash@… ends the thread.
const { parentPort } = require("node:worker_threads");
parentPort.on("message", (batch) => {
  if (batch.some((m) => m.t === "scan" && m.input.mailFrom.startsWith("crash@"))) process.exit(3);
});
require("tsx/cjs/api").register();
require("../../gateway/filters/scan-thread.ts");
