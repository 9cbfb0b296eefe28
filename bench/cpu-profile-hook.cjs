/**
 * Loaded into the gateway with `--require` by bench/profile-gateway.ts (`--cpu-prof` is not
 * allowed in NODE_OPTIONS): samples the main thread's CPU from start-up and writes a
 * .cpuprofile (Chrome DevTools format) into MOAT_CPU_PROFILE_DIR when the process exits; a
 * sample every MOAT_PROFILE_INTERVAL_US µs (200 unless set).
 */
const inspector = require("node:inspector");
const { writeFileSync } = require("node:fs");
const { join } = require("node:path");

const session = new inspector.Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: Number(process.env.MOAT_PROFILE_INTERVAL_US ?? 200) });
session.post("Profiler.start");
process.on("exit", () => {
  // The session is the process's own: post() answers synchronously, even here.
  session.post("Profiler.stop", (error, result) => {
    if (!error)
      writeFileSync(
        join(process.env.MOAT_CPU_PROFILE_DIR, `${process.pid}.cpuprofile`),
        JSON.stringify(result.profile),
      );
  });
});
