/**
 * Pre-queue filtering for one message: turns the scanner's verdict into what the spool does
 * with the durable tmp file (deliver, quarantine, hold, discard, refuse) and into the tracker's
 * verdict record. The scan starts when the transfer does (it reads the message as it arrives);
 * one that throws, or is not done SCAN_TIMEOUT_MS after the message's end, is a tempfail (451):
 * never a hang, never a pass. The time a slow sender takes is not the scan's.
 */
import type { Directory } from "../directory/directory";
import type { Scanner, Verdict } from "../filters/pipeline";
import type { MessageSource } from "../filters/source";
import type { MessageContext } from "../filters/types";
import type { SpoolDecision } from "../queue/spool";
import type { ArrivalRecord } from "../store/tracker";
import { MESSAGE_REJECTED, SCAN_UNAVAILABLE } from "./replies";

/** Clients wait 10 minutes for the reply to DATA (RFC 5321 §4.5.3.2.6); we answer well before. */
export const SCAN_TIMEOUT_MS = 90_000;

export type ScanInput = Pick<
  MessageContext,
  "mailFrom" | "rcptTo" | "clientIp" | "clientName" | "helo" | "tls" | "direction"
>;

export function describeRule(verdict: Verdict): string | null {
  const rule = verdict.rule;
  return rule ? `${rule.scope} ${rule.kind} rule ${rule.file}:${rule.line}` : null;
}

export function trackerVerdict(verdict: Verdict): NonNullable<ArrivalRecord["verdict"]> {
  const status =
    verdict.action === "quarantine" || verdict.action === "hold"
      ? "Quarantine"
      : verdict.action === "delete"
        ? "Delete"
        : verdict.action === "reject"
          ? "Reject"
          : "Pending";
  return {
    status,
    category: verdict.category === "clean" ? null : verdict.category,
    rule: describeRule(verdict),
    reasons: verdict.reasons,
  };
}

/** The spool's `decide` callback; `verdict()` tells what was decided, once it was, and `decidedAt()` when. */
export function createScanStage(
  scanner: Scanner,
  input: ScanInput,
  directory: () => Directory | undefined,
  timeoutMs = SCAN_TIMEOUT_MS,
): {
  decide: (message: MessageSource, id: string) => Promise<SpoolDecision>;
  verdict(): Verdict | undefined;
  /** When the verdict was reached (`performance.now()`), once it was. */
  decidedAt(): number | undefined;
} {
  let verdict: Verdict | undefined;
  let decidedAt: number | undefined;
  return {
    verdict: () => verdict,
    decidedAt: () => decidedAt,
    async decide(source, id) {
      let timer: NodeJS.Timeout | undefined;
      const dir = directory();
      const scanning = scanner.scan({ ...input, source, ...(dir ? { directory: dir } : {}) });
      scanning.catch(() => undefined); // awaited below unless the message never arrives whole
      await source.complete; // rejects then, and the spool refuses the message anyway
      try {
        verdict = await Promise.race([
          scanning,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`scan took longer than ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (error) {
        verdict = {
          category: "clean",
          action: "tempfail",
          reasons: [{ detector: "scan", symbol: "SCAN_FAILED", detail: (error as Error).message }],
          headers: [],
          engineFailures: [(error as Error).message],
        };
      } finally {
        clearTimeout(timer);
        decidedAt = performance.now();
      }
      const meta = {
        headers: verdict.headers,
        verdict: { category: verdict.category, action: verdict.action, rule: describeRule(verdict) },
      };
      switch (verdict.action) {
        case "deliver":
          return { to: "incoming", meta };
        case "quarantine":
          return { to: "quarantine", meta };
        case "hold":
          return { to: "hold", meta };
        case "delete":
          return { discard: true };
        case "reject":
          return {
            refuse: MESSAGE_REJECTED(verdict.category === "clean" ? "by a block rule" : `as ${verdict.category}`, id),
          };
        case "tempfail":
          return { refuse: SCAN_UNAVAILABLE() };
      }
    },
  };
}
