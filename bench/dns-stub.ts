/**
 * A loopback DNS stub in a process of its own, for benchmarks: it answers every query at once
 * (NXDOMAIN), as a caching resolver beside a production gateway answers most. In its own
 * process so that a busy load generator in the benchmark's process cannot delay its answers
 * (which would show up as the gateway's accept latency).
 *
 *   startDnsStub() from a benchmark; run directly, it prints its address and serves until killed.
 */
import { spawn } from "node:child_process";
import { startDnsServer } from "../test/helpers/dns-server";

export async function startDnsStub(): Promise<{ address: string; close(): Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", __filename], { stdio: ["ignore", "pipe", "inherit"] });
  const address = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("the DNS stub did not start")), 30_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      const line = /^(\S+)\n/.exec(out);
      if (line?.[1]) {
        clearTimeout(timer);
        resolve(line[1]);
      }
    });
    child.once("exit", (code) => reject(new Error(`the DNS stub exited (${code})`)));
  });
  return {
    address,
    close: async () => {
      child.kill("SIGTERM");
    },
  };
}

if (require.main === module) {
  void startDnsServer({}).then((server) => console.log(server.address));
}
