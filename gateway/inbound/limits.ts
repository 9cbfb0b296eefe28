/**
 * Per-client limits on the inbound listener (Postfix's anvil): concurrent sessions per IP and
 * new sessions per minute per IP (beyond them: 421 at connect, then the connection closes),
 * and messages per minute per IP (beyond it: 451 at MAIL FROM, so the sender retries later).
 * The global session cap is smtp-server's maxClients.
 *
 * Memory stays bounded: counters of IPs with no session and no recent event are dropped.
 */
import { SmtpReply } from "./replies";

export interface LimitSettings {
  readonly maxConnectionsPerIp: number;
  readonly connectionsPerMinutePerIp: number;
  readonly messagesPerMinutePerIp: number;
}

const WINDOW_MS = 60 * 1000;

interface ClientCounters {
  sessions: number;
  connects: RecentTimes;
  messages: RecentTimes;
}

/** One client's event times in the last minute, oldest first. */
export interface RecentTimes {
  readonly count: number;
  add(time: number): void;
  /** Drops the times at or before `since`. */
  expire(since: number): void;
}

/**
 * The times were added in order, so the expired ones are at the front. They are stepped over by
 * an index and cut off only once they are half of the array (and at least COMPACT_AT), so
 * dropping them costs the same at 600 times a minute as at 60,000: `splice` from the front moved
 * every time after them, for every event (45 µs a message for a client at 1,000 a second with
 * the limits lifted, bench/RESULTS.md, the AX session).
 */
const COMPACT_AT = 1024;
export function recentTimes(): RecentTimes {
  let times: number[] = [];
  let start = 0;
  return {
    get count() {
      return times.length - start;
    },
    add(time) {
      times.push(time);
    },
    expire(since) {
      while (start < times.length && (times[start] ?? 0) <= since) start++;
      if (start === times.length) {
        times = [];
        start = 0;
      } else if (start >= COMPACT_AT && start * 2 >= times.length) {
        times = times.slice(start);
        start = 0;
      }
    },
  };
}

export interface SessionLimits {
  /** undefined: admitted (call release() when the session ends). */
  admitSession(sessionId: string, ip: string): SmtpReply | undefined;
  releaseSession(sessionId: string): void;
  admitMessage(ip: string): SmtpReply | undefined;
  /** IPs currently tracked (for tests and metrics). */
  readonly trackedClients: number;
}

export function createSessionLimits(settings: LimitSettings, now: () => number = Date.now): SessionLimits {
  const clients = new Map<string, ClientCounters>();
  const sessionIp = new Map<string, string>();

  /** Drops the client's times older than a minute. */
  const expire = (entry: ClientCounters) => {
    const since = now() - WINDOW_MS;
    entry.connects.expire(since);
    entry.messages.expire(since);
  };
  const counters = (ip: string): ClientCounters => {
    let entry = clients.get(ip);
    if (!entry) {
      entry = { sessions: 0, connects: recentTimes(), messages: recentTimes() };
      clients.set(ip, entry);
    }
    expire(entry);
    return entry;
  };
  const forgetIfIdle = (ip: string) => {
    const entry = clients.get(ip);
    if (!entry || entry.sessions > 0) return;
    expire(entry);
    if (entry.connects.count === 0 && entry.messages.count === 0) clients.delete(ip);
  };

  return {
    admitSession(sessionId, ip) {
      const entry = counters(ip);
      if (entry.sessions >= settings.maxConnectionsPerIp) {
        return new SmtpReply(421, `4.7.0 Error: too many connections from ${ip}; try again later`);
      }
      if (entry.connects.count >= settings.connectionsPerMinutePerIp) {
        return new SmtpReply(421, `4.7.0 Error: too many connections from ${ip} in the last minute; try again later`);
      }
      entry.sessions++;
      entry.connects.add(now());
      sessionIp.set(sessionId, ip);
      return undefined;
    },
    releaseSession(sessionId) {
      const ip = sessionIp.get(sessionId);
      if (ip === undefined) return; // refused at connect: never counted
      sessionIp.delete(sessionId);
      const entry = clients.get(ip);
      if (entry) entry.sessions = Math.max(0, entry.sessions - 1);
      for (const known of [...clients.keys()].slice(0, 64)) forgetIfIdle(known);
    },
    admitMessage(ip) {
      const entry = counters(ip);
      if (entry.messages.count >= settings.messagesPerMinutePerIp) {
        return new SmtpReply(451, `4.7.1 Error: too many messages from ${ip} in the last minute; try again later`);
      }
      entry.messages.add(now());
      return undefined;
    },
    get trackedClients() {
      return clients.size;
    },
  };
}
