/**
 * The one interface every detector implements, and what they return. A detector looks at one
 * message and reports findings — each with its category (or none: information only), the
 * detector's name, a score or symbol where the engine has one, and a human sentence — so the
 * tracker can show exactly why. It never decides the action: pipeline.ts does, once, from the
 * findings, the rules and the policy.
 *
 * A detector that cannot do its job (an engine down, a timeout) throws EngineUnavailableError;
 * the pipeline then applies the documented engine-failure policy instead of passing the
 * message as clean.
 */
import type { VerdictCategory } from "../config";
import type { DirectoryEntry } from "../directory/directory";
import type { ParsedMessage } from "./message";
import type { MessageSource } from "./source";

export interface Finding {
  readonly detector: string;
  /** The verdict category this finding puts the message in; undefined: information only. */
  readonly category?: VerdictCategory;
  readonly score?: number;
  readonly symbol?: string;
  readonly detail: string;
}

/** What a detector that reads the message while it arrives (a streaming filter) is given. */
export interface ArrivingContext {
  /** "" for the null sender. */
  readonly mailFrom: string;
  readonly rcptTo: readonly string[];
  readonly clientIp: string;
  /** The client's forward-confirmed name (inbound/client-name.ts); undefined: unknown. */
  readonly clientName?: string;
  readonly helo: string;
  readonly tls: boolean;
  /** inbound (internet -> tenant) or outbound (tenant -> internet). */
  readonly direction: "inbound" | "outbound";
  /** The whole message as received (with our Received header on top). */
  readonly source: MessageSource;
  /** The customer's domains, lower case. */
  readonly domains: ReadonlySet<string>;
  /** Who is internal (display names for impersonation); undefined when unknown. */
  readonly directory?: PeopleDirectory;
}

/** What the detectors need of the directory: the people (a Directory is one). */
export interface PeopleDirectory {
  people(): readonly Pick<DirectoryEntry, "primary" | "displayName">[];
}

/** What every other detector is given: the message has arrived whole and has been parsed. */
export interface MessageContext extends ArrivingContext {
  readonly parsed: ParsedMessage;
}

export interface FilterResult {
  readonly findings: readonly Finding[];
  /** Header lines to add on delivery (e.g. Authentication-Results), without CRLF. */
  readonly headers?: readonly string[];
  /**
   * This detector's part of the spam score (rspamd's score, Bayes's contribution). The pipeline
   * adds them up and compares the sum with `filters.spamThreshold`.
   */
  readonly spamScore?: number;
  /** Facts later stages need (e.g. whether the sender is authenticated, for allow rules). */
  readonly facts?: Readonly<Record<string, string | boolean | number>>;
}

export type Filter =
  | {
      readonly name: string;
      readonly streaming?: false;
      run(message: MessageContext): Promise<FilterResult>;
    }
  | {
      readonly name: string;
      /** Runs from the start of the transfer, beside the MIME parse, reading `source` itself. */
      readonly streaming: true;
      run(message: ArrivingContext): Promise<FilterResult>;
    };

export class EngineUnavailableError extends Error {
  constructor(
    readonly engine: string,
    message: string,
  ) {
    super(`${engine}: ${message}`);
    this.name = "EngineUnavailableError";
  }
}
