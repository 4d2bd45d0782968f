/**
 * The task history: what a worker keeps of every call it finishes, beyond the result's expiry, so that a
 * person (the console, `taskfleet history`) can find any recent call and see what it was given and how
 * it ended. One entry per attempt that ended (a call retried twice then done has three), written by the
 * worker in the same script call that acknowledges the message (brokers/redis/scripts/settle.lua), and
 * kept within bounds of count and age (HistoryLimits).
 */
import type { HistoryLimits } from '../brokers/broker.ts';
import { ConfigError, type RecordedError } from '../errors.ts';
import type { DeadLetterReason, Envelope } from '../message/envelope.ts';
import type { JsonValue } from '../message/json.ts';

/** How an attempt ended, as the history records it: Celery's ready states, and RETRY for one retried. */
export type HistoryState = 'SUCCESS' | 'FAILURE' | 'RETRY' | 'REVOKED';

export interface HistoryEntry {
  id: string;
  task: string;
  state: HistoryState;
  queue: string;
  /** The worker that finished the attempt. */
  worker: string;
  /** This attempt's number: 1 for the first run. */
  attempt: number;
  /** When the call was made (epoch ms). */
  createdAt: number;
  startedAt?: number;
  finishedAt: number;
  /** For RETRY: when the next attempt is due. */
  retryAt?: number;
  args?: JsonValue[];
  kwargs?: Record<string, JsonValue>;
  priority: number;
  result?: JsonValue;
  error?: RecordedError;
  /** The call was dead-lettered, for this reason (its error says why). */
  deadLetter?: DeadLetterReason;
  parentId?: string;
  rootId: string;
  groupId?: string;
  /**
   * What was left out to keep the entry within `maxEntryBytes`, each with its size in bytes: the result
   * first, then kwargs, then args (their JSON); then the error's stack and message are cut (their
   * whole length). A value JSON cannot write (nested too deep) is left out with its size null.
   */
  omitted?: { result?: number | null; kwargs?: number | null; args?: number | null; stack?: number; message?: number };
}

export interface HistoryOptions extends HistoryLimits {
  /** The most bytes of JSON one entry takes; larger values are left out (HistoryEntry.omitted). */
  readonly maxEntryBytes: number;
}

export const DEFAULT_HISTORY: HistoryOptions = {
  maxEntries: 10_000,
  maxAgeMs: 7 * 24 * 60 * 60 * 1000,
  maxEntryBytes: 4096,
};

/** What an attempt's outcome adds to the envelope's fields in its entry. */
export interface HistoryOutcome {
  state: HistoryState;
  startedAt?: number;
  finishedAt: number;
  retryAt?: number;
  result?: JsonValue;
  error?: RecordedError;
  deadLetter?: DeadLetterReason;
}

/**
 * The history entry of an attempt that `worker` finished, as JSON of at most `maxBytes` (see
 * HistoryEntry.omitted).
 */
export function historyJson(envelope: Envelope, outcome: HistoryOutcome, worker: string, maxBytes: number): string {
  // Built field by field (no spreads): this runs for every call a worker finishes.
  const entry: HistoryEntry = {
    id: envelope.id,
    task: envelope.task,
    state: outcome.state,
    queue: envelope.queue,
    worker,
    attempt: envelope.attempt,
    createdAt: envelope.createdAt,
    finishedAt: outcome.finishedAt,
    args: envelope.args,
    kwargs: envelope.kwargs,
    priority: envelope.priority,
    rootId: envelope.rootId,
  };
  if (outcome.startedAt !== undefined) entry.startedAt = outcome.startedAt;
  if (outcome.retryAt !== undefined) entry.retryAt = outcome.retryAt;
  if (outcome.result !== undefined) entry.result = outcome.result;
  if (outcome.error !== undefined) entry.error = outcome.error;
  if (outcome.deadLetter !== undefined) entry.deadLetter = outcome.deadLetter;
  if (envelope.parentId !== undefined) entry.parentId = envelope.parentId;
  if (envelope.groupId !== undefined) entry.groupId = envelope.groupId;
  const omitted: NonNullable<HistoryEntry['omitted']> = {};
  let json = writable(entry, omitted);
  // A string of n UTF-16 units is at most 3n bytes: most entries need no exact count.
  if (json.length * 3 <= maxBytes || Buffer.byteLength(json) <= maxBytes) return json;
  entry.omitted = omitted;
  for (const field of ['result', 'kwargs', 'args'] as const) {
    if (entry[field] === undefined) continue;
    omitted[field] = Buffer.byteLength(JSON.stringify(entry[field]));
    delete entry[field];
    json = JSON.stringify(entry);
    if (Buffer.byteLength(json) <= maxBytes) return json;
  }
  // Then the error's stack, then its message (each bounded, but together maybe over): cut to fit.
  for (const part of ['stack', 'message'] as const) {
    const text = entry.error?.[part];
    if (entry.error === undefined || text === undefined) continue;
    omitted[part] = Buffer.byteLength(text);
    let keep = text.length;
    while (keep > 0 && Buffer.byteLength(json) > maxBytes) {
      keep = Math.floor(keep / 2);
      entry.error = { ...entry.error, [part]: text.slice(0, keep) };
      json = JSON.stringify(entry);
    }
    if (Buffer.byteLength(json) <= maxBytes) return json;
  }
  return json;
}

/**
 * The entry as JSON. A value JSON cannot write (arguments nested deeper than JSON.stringify goes, which
 * JSON.parse read) is left out, its size given as null: a call's entry must never stop its settlement.
 */
function writable(entry: HistoryEntry, omitted: NonNullable<HistoryEntry['omitted']>): string {
  try {
    return JSON.stringify(entry);
  } catch {
    for (const field of ['result', 'kwargs', 'args'] as const) {
      try {
        JSON.stringify(entry[field]);
      } catch {
        omitted[field] = null;
        delete entry[field];
      }
    }
    entry.omitted = omitted;
    return JSON.stringify(entry);
  }
}

/**
 * The history options from the app's `history` option and the environment. Off unless the option is
 * `true` or bounds, or TASKFLEET_HISTORY is `on` (the option wins: `false` is off whatever the
 * environment says); the bounds come from the option, else TASKFLEET_HISTORY_MAX_ENTRIES,
 * TASKFLEET_HISTORY_MAX_AGE (ms) and TASKFLEET_HISTORY_MAX_ENTRY_BYTES, else DEFAULT_HISTORY.
 * Undefined: no history is kept.
 */
export function resolveHistory(
  given: Partial<HistoryOptions> | boolean | undefined,
  env: NodeJS.ProcessEnv = process.env,
): HistoryOptions | undefined {
  const switched = env.TASKFLEET_HISTORY;
  if (switched !== undefined && switched !== '' && switched !== 'on' && switched !== 'off') {
    throw new ConfigError(`TASKFLEET_HISTORY must be on or off, not ${JSON.stringify(switched)}`);
  }
  if (given === false || (given === undefined && switched !== 'on')) return undefined;
  const option = given === true ? undefined : given;
  const fields = [
    ['maxEntries', 'TASKFLEET_HISTORY_MAX_ENTRIES'],
    ['maxAgeMs', 'TASKFLEET_HISTORY_MAX_AGE'],
    ['maxEntryBytes', 'TASKFLEET_HISTORY_MAX_ENTRY_BYTES'],
  ] as const;
  const resolved = { ...DEFAULT_HISTORY };
  for (const [field, name] of fields) {
    const fromEnv = env[name];
    const value = option?.[field] ?? (fromEnv === undefined || fromEnv === '' ? undefined : Number(fromEnv));
    if (value === undefined) continue;
    if (!(Number.isSafeInteger(value) && value >= 1)) {
      const from = option?.[field] === undefined ? ` (from ${name})` : '';
      throw new ConfigError(`history.${field} must be a whole number ≥ 1, not ${value}${from}`);
    }
    resolved[field] = value;
  }
  if (resolved.maxEntryBytes < 512) {
    throw new ConfigError(`history.maxEntryBytes must be at least 512, not ${resolved.maxEntryBytes}`);
  }
  return resolved;
}
