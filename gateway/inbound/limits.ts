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
  connects: number[];
  messages: number[];
}

export interface SessionLimits {
  /** undefined: admitted (call release() when the session ends). */
  admitSession(sessionId: string, ip: string): SmtpReply | undefined;
  releaseSession(sessionId: string): void;
  admitMessage(ip: string): SmtpReply | undefined;
  /** IPs currently tracked (for tests and metrics). */
  readonly trackedClients: number;
}

/**
 * Drops the times at or before `since`. They were added in order, so they are at the front:
 * a busy client's minute (the bench: 18,000 messages) is not copied for every message.
 */
function prune(times: number[], since: number): void {
  let expired = 0;
  while (expired < times.length && (times[expired] ?? 0) <= since) expired++;
  if (expired > 0) times.splice(0, expired);
}

export function createSessionLimits(settings: LimitSettings, now: () => number = Date.now): SessionLimits {
  const clients = new Map<string, ClientCounters>();
  const sessionIp = new Map<string, string>();

  const counters = (ip: string): ClientCounters => {
    let entry = clients.get(ip);
    if (!entry) {
      entry = { sessions: 0, connects: [], messages: [] };
      clients.set(ip, entry);
    }
    const since = now() - WINDOW_MS;
    prune(entry.connects, since);
    prune(entry.messages, since);
    return entry;
  };
  const forgetIfIdle = (ip: string) => {
    const entry = clients.get(ip);
    if (
      entry &&
      entry.sessions === 0 &&
      entry.connects.every((t) => t <= now() - WINDOW_MS) &&
      entry.messages.every((t) => t <= now() - WINDOW_MS)
    ) {
      clients.delete(ip);
    }
  };

  return {
    admitSession(sessionId, ip) {
      const entry = counters(ip);
      if (entry.sessions >= settings.maxConnectionsPerIp) {
        return new SmtpReply(421, `4.7.0 Error: too many connections from ${ip}; try again later`);
      }
      if (entry.connects.length >= settings.connectionsPerMinutePerIp) {
        return new SmtpReply(421, `4.7.0 Error: too many connections from ${ip} in the last minute; try again later`);
      }
      entry.sessions++;
      entry.connects.push(now());
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
      if (entry.messages.length >= settings.messagesPerMinutePerIp) {
        return new SmtpReply(451, `4.7.1 Error: too many messages from ${ip} in the last minute; try again later`);
      }
      entry.messages.push(now());
      return undefined;
    },
    get trackedClients() {
      return clients.size;
    },
  };
}
