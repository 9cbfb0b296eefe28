/**
 * The bench's Haraka without its 40 ms stall (bench/peer-systems.ts): TCP_NODELAY set on each
 * socket Haraka's tls_socket.js connects, or a clear error when Haraka's source has moved on.
 */
import { describe, expect, it } from "vitest";
import { harakaName, harakaWithNoDelay } from "../../bench/peer-systems";

/** The shape of Haraka 3.3.4's tls_socket.js around its outbound connect. */
const TLS_SOCKET = [
  "function connect(conn_options = {}) {",
  "    // called by outbound/client_pool, smtp_client, plugins/spamassassin,avg,clamd,",
  "",
  "    const cryptoSocket = net.connect(conn_options)",
  "    const socket = new pluggableStream(cryptoSocket)",
  "",
].join("\n");

describe("Haraka with TCP_NODELAY for the peers bench", () => {
  it("sets TCP_NODELAY on the socket right after it is made, at the same indent, and changes nothing else", () => {
    const patched = harakaWithNoDelay(TLS_SOCKET);
    const lines = patched.split("\n");
    expect(lines[3]).toBe("    const cryptoSocket = net.connect(conn_options)");
    expect(lines[4]).toBe("    cryptoSocket.setNoDelay(true) // bench: TCP_NODELAY");
    expect(lines.filter((_, i) => i !== 4).join("\n")).toBe(TLS_SOCKET);
  });

  it("refuses a source without that line, or with it twice, naming the line", () => {
    expect(() => harakaWithNoDelay(TLS_SOCKET.replace("net.connect", "tls.connect"))).toThrow(
      /"const cryptoSocket = net.connect\(conn_options\)" is not there exactly once/,
    );
    expect(() => harakaWithNoDelay(TLS_SOCKET + TLS_SOCKET)).toThrow(/not there exactly once/);
  });

  it("names the patched peer apart from stock Haraka in the report", () => {
    expect(harakaName("smtp_forward")).toBe("haraka (smtp_forward)");
    expect(harakaName("smtp_forward-nodelay")).toBe("haraka (smtp_forward, TCP_NODELAY)");
  });
});
