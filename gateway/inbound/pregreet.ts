/**
 * The pregreet test, remembered, as Postfix's postscreen remembers it (postscreen_greet_ttl,
 * one day).
 *
 * smtp-server waits 100 ms before it greets, and a client that talks in that time gets
 * "421 You talk too soon" and is cut off: spam software that does not wait for the greeting.
 * The wait costs every connection 100 ms, and a sender that opens a connection per message (a
 * partner's MTA, Exchange Online) pays it every time. Here a client that waited and was
 * admitted is remembered by its IP address for a day, and its next connections are greeted at
 * once. A new address, or one not seen passing for a day, still waits. The memory is bounded
 * (the oldest passes are forgotten first) and lives in the process: a restart forgets it.
 *
 * smtp-server has no option for the wait: `greetPassedClientsAtOnce` replaces the server's
 * connect() (the few lines that create a connection) with a copy that starts a remembered
 * client without the timer (smtp-server 3.21.6, pinned: these are its internals).
 */
import type { SMTPServer } from "smtp-server";
import { SMTPConnection } from "smtp-server/lib/smtp-connection.js";

export const PASS_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_REMEMBERED = 100_000;

export interface PregreetMemory {
  /** `ip` waited for the greeting and was admitted. */
  passed(ip: string): void;
  /** Whether `ip` passed within the last day. */
  known(ip: string): boolean;
}

export function createPregreetMemory(now: () => number = Date.now, max = MAX_REMEMBERED): PregreetMemory {
  const passes = new Map<string, number>(); // in the order they passed, oldest first
  return {
    passed(ip) {
      passes.delete(ip);
      passes.set(ip, now());
      if (passes.size > max) passes.delete(passes.keys().next().value as string);
    },
    known(ip) {
      const at = passes.get(ip);
      if (at === undefined) return false;
      if (now() - at < PASS_TTL_MS) return true;
      passes.delete(ip);
      return false;
    },
  };
}

/** Makes `server` greet the clients `memory` knows without smtp-server's wait (see the file comment). */
export function greetPassedClientsAtOnce(server: SMTPServer, memory: PregreetMemory): void {
  server.connect = (socket, socketOptions) => {
    // smtp-server's connect(), as it is:
    const connection = new SMTPConnection(server, socket, socketOptions);
    server.connections.add(connection);
    connection.on("error", (error: Error) => server._onError(error));
    connection.on("connect", (data) => server._onClientConnect(data));
    const ip = connection.remoteAddress;
    if (!memory.known(ip)) {
      // It waits; 'connect' comes only if it did not talk early and onConnect admitted it.
      connection.once("connect", () => memory.passed(ip));
      connection.init();
      return;
    }
    // init() without its timer.
    connection._setListeners(() => {
      const max = server.options.maxClients;
      if (max && server.connections.size > max)
        return connection.send(421, `${connection.name} Too many connected clients, try again in a moment`, false);
      connection.connectionReady();
    });
  };
}
