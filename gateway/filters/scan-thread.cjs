// The scan thread's entry (thread-scanner.ts starts it): the gateway is TypeScript run by tsx,
// and a worker thread does not inherit the loader, so it registers tsx before loading the thread.
require("tsx/cjs/api").register();
require("./scan-thread.ts");
