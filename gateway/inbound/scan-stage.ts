/**
 * Pre-queue filtering for one message: turns the scanner's verdict into what the spool does
 * with the durable tmp file (deliver, quarantine, hold, discard, refuse) and into the tracker's
 * verdict record. A scan that throws or exceeds SCAN_TIMEOUT_MS is a tempfail (451): never a
 * hang, never a pass.
 */
import type { Directory } from "../directory/directory";
import type { Scanner, Verdict } from "../filters/pipeline";
import type { MessageContext } from "../filters/types";
import type { SpoolDecision } from "../queue/spool";
import type { ArrivalRecord } from "../store/tracker";
import { MESSAGE_REJECTED, SCAN_UNAVAILABLE } from "./replies";

/** Clients wait 10 minutes for the reply to DATA (RFC 5321 §4.5.3.2.6); we answer well before. */
export const SCAN_TIMEOUT_MS = 90_000;

export type ScanInput = Pick<MessageContext, "mailFrom" | "rcptTo" | "clientIp" | "helo" | "tls" | "direction">;

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

/** The spool's `decide` callback; `verdict()` tells what was decided, once it was. */
export function createScanStage(
  scanner: Scanner,
  input: ScanInput,
  directory: () => Directory | undefined,
): { decide: (read: () => Promise<Buffer>, id: string) => Promise<SpoolDecision>; verdict(): Verdict | undefined } {
  let verdict: Verdict | undefined;
  return {
    verdict: () => verdict,
    async decide(read, id) {
      const raw = await read();
      let timer: NodeJS.Timeout | undefined;
      try {
        const dir = directory();
        verdict = await Promise.race([
          scanner.scan({ ...input, raw, ...(dir ? { directory: dir } : {}) }),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`scan took longer than ${SCAN_TIMEOUT_MS} ms`)), SCAN_TIMEOUT_MS);
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
