/**
 * What an admin or the helpdesk does with a kept message: read the original (.eml), release
 * it (delivered unchanged, through the normal delivery path), delete it, or propose an
 * allow/block rule for its sender. Quarantined messages live in the spool's `quarantine/`,
 * messages held because an engine could not scan them in `hold/`; both can be released.
 *
 * Releasing a message kept as spam teaches the Bayes filter that it is ham (`learnHam`, when
 * `filters.bayes.learnOnRelease`): the admin's decision is the label. A failure to learn is
 * logged and does not stop the release.
 *
 * Every action is recorded in the tracker (status) and the audit log (who, what, when).
 * A rule proposal is appended to `<dataDir>/rule-proposals.csv` in the rules CSV format, for
 * the admin to review and copy into the stack's rules file (rules are code: they reach the
 * gateway through `pulumi up`, never behind the stack's back).
 */
import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../log";
import type { Envelope, Spool } from "../queue/spool";
import type { TrackerStore } from "../store/tracker";

const KEPT_STATES = ["quarantine", "hold"] as const;
type KeptState = (typeof KEPT_STATES)[number];

export class QuarantineError extends Error {
  constructor(
    readonly code: "not_found" | "bad_request",
    message: string,
  ) {
    super(message);
  }
}

export interface Quarantine {
  original(id: string): Promise<{ envelope: Envelope; open: () => Readable; bytes: number }>;
  release(id: string, actor: string): Promise<void>;
  remove(id: string, actor: string): Promise<void>;
  proposeRule(id: string, kind: "allow" | "block", actor: string): Promise<string>;
  /** Retention: quarantined bodies and tracker records older than their periods go. */
  purge(retention: {
    readonly trackerDays: number;
    readonly quarantineDays: number;
  }): Promise<{ bodies: number; records: number }>;
}

export function createQuarantine(options: {
  readonly spool: Spool;
  readonly tracker: TrackerStore;
  readonly dataDir: string;
  /** Hands a released message to delivery. */
  readonly onReleased: (id: string) => void;
  /** Teaches the Bayes filter a released spam-category message as ham. */
  readonly learnHam?: (raw: Buffer) => Promise<void>;
  readonly log: Logger;
  readonly now?: () => number;
}): Quarantine {
  const { spool, tracker, log } = options;
  const now = options.now ?? Date.now;

  async function locate(id: string): Promise<KeptState> {
    if (!/^[0-9A-Z]{8,32}$/.test(id))
      throw new QuarantineError("bad_request", `${JSON.stringify(id)} is not a queue id`);
    for (const state of KEPT_STATES) {
      // One stat per state, not a listing of the whole quarantine per action.
      const found = await spool.modifiedAt(state, id).then(
        () => true,
        () => false,
      );
      if (found) return state;
    }
    throw new QuarantineError("not_found", `message ${id} is not in quarantine (released, deleted or never kept)`);
  }

  return {
    async original(id) {
      const message = await spool.read(await locate(id), id);
      return { envelope: message.envelope, open: message.openMessage, bytes: message.bytes };
    },
    async release(id, actor) {
      const state = await locate(id);
      if (options.learnHam && (await tracker.story(id))?.category === "spam") {
        try {
          const chunks: Buffer[] = [];
          for await (const chunk of (await spool.read(state, id)).openMessage() as AsyncIterable<Buffer>)
            chunks.push(chunk);
          await options.learnHam(Buffer.concat(chunks));
          log.info("released spam learned as ham", { id });
        } catch (error) {
          log.warn("releasing: could not learn the message as ham", { id, error: (error as Error).message });
        }
      }
      await spool.move(id, state, "incoming");
      await tracker.setStatus(id, "Pending", now());
      await tracker.audit({ at: now(), actor, action: "release", messageId: id, detail: `released from ${state}/` });
      log.info("released from quarantine", { id, actor });
      options.onReleased(id);
    },
    async remove(id, actor) {
      const state = await locate(id);
      await spool.remove(id, state);
      await tracker.setStatus(id, "Delete", now());
      await tracker.audit({ at: now(), actor, action: "delete", messageId: id, detail: `deleted from ${state}/` });
      log.info("deleted from quarantine", { id, actor });
    },
    async purge(retention) {
      const day = 24 * 60 * 60 * 1000;
      let bodies = 0;
      for (const state of KEPT_STATES) {
        for (const id of await spool.list(state)) {
          if ((await spool.modifiedAt(state, id)) >= now() - retention.quarantineDays * day) continue;
          await spool.remove(id, state);
          await tracker.setStatus(id, "Delete", now());
          await tracker.audit({
            at: now(),
            actor: "retention",
            action: "delete",
            messageId: id,
            detail: `older than ${retention.quarantineDays} days`,
          });
          bodies++;
        }
      }
      const records = (await tracker.purge(now() - retention.trackerDays * day)).length;
      if (bodies > 0 || records > 0) log.info("retention purge", { bodies, records });
      return { bodies, records };
    },
    async proposeRule(id, kind, actor) {
      const story = await tracker.story(id);
      if (!story) throw new QuarantineError("not_found", `no message ${id} in the tracker`);
      if (!story.mailFrom)
        throw new QuarantineError("bad_request", "the message has the null sender: no rule by sender");
      const file = join(options.dataDir, "rule-proposals.csv");
      const comment = `proposed by ${actor} from message ${id} on ${new Date(now()).toISOString()}`.replace(
        /[",\r\n]/g,
        " ",
      );
      const line = `${kind},${story.mailFrom},,,${comment}`;
      appendFileSync(file, `${existsSync(file) ? "" : "kind,sender,ip,action,comment\n"}${line}\n`, { mode: 0o600 });
      await tracker.audit({ at: now(), actor, action: `propose-${kind}`, messageId: id, detail: line });
      return line;
    },
  };
}
