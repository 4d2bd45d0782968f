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
import { fitsIn, type JsonValue } from '../message/json.ts';
import type { ResultRecord } from '../results/result.ts';

/** The header a retried call carries: the id of the call it retries. */
export const RETRY_OF_HEADER = 'taskfleet-retry-of';

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
  /** When the call was made (epoch ms); absent when the message was left out. */
  createdAt?: number;
  startedAt?: number;
  finishedAt: number;
  /** For RETRY: when the next attempt is due. */
  retryAt?: number;
  /** The call's arguments, as it was sent; absent when the message was left out (`omitted.message`). */
  args?: JsonValue[];
  kwargs?: Record<string, JsonValue>;
  priority?: number;
  result?: JsonValue;
  error?: RecordedError;
  /** The call was dead-lettered, for this reason (its error says why). */
  deadLetter?: DeadLetterReason;
  parentId?: string;
  rootId: string;
  groupId?: string;
  /** This call is a retry, made from the console, of the call with this id. */
  retryOf?: string;
  /**
   * What was left out to keep the entry within `maxEntryBytes`: `message`, the call as it was sent (its
   * arguments), with its size in bytes, when it does not fit beside the outcome; from the outcome the
   * `result` (its JSON's size; null when JSON cannot write it), then the error's `stack` and `message`
   * are cut (their length before). The error's is `errorMessage` here, to tell it from the call's.
   */
  omitted?: { message?: number; result?: number | null; stack?: number; errorMessage?: number };
}

/** The history's bounds (HistoryLimits: count, age, and the size of one entry). */
export type HistoryOptions = HistoryLimits;

export const DEFAULT_HISTORY: HistoryOptions = {
  maxEntries: 10_000,
  maxAgeMs: 7 * 24 * 60 * 60 * 1000,
  maxEntryBytes: 4096,
};

/**
 * How an attempt ended, as the worker writes it into the history (its `o` field): a result record's
 * fields (ResultRecord), and `deadLetter` and `omitted` when they apply. A call whose result is stored
 * on the broker's Redis has its result record written there instead, the same JSON as `get()` reads.
 */
export type HistoryOutcome = ResultRecord & {
  deadLetter?: DeadLetterReason;
  omitted?: HistoryEntry['omitted'];
};

/**
 * An attempt's outcome as JSON of at most `maxBytes`: over it, the result is left out first (its size
 * in `omitted.result`), then the error's stack and message are cut (`omitted.stack`,
 * `omitted.message`: their length before). A result JSON cannot write (nested too deep) is left out
 * with its size null: an entry must never stop its call's settlement.
 */
export function outcomeJson(given: HistoryOutcome, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(given);
    if (fitsIn(maxBytes, json)) return json;
  } catch {
    json = undefined;
  }
  // Something has to go: on a copy, so the caller's record stays as it is.
  const omitted: NonNullable<HistoryEntry['omitted']> = {};
  const outcome: HistoryOutcome = { ...given, omitted };
  if (json === undefined) {
    omitted.result = null;
    outcome.result = undefined;
    json = JSON.stringify(outcome);
    if (fitsIn(maxBytes, json)) return json;
  }
  if (outcome.result !== undefined) {
    omitted.result = Buffer.byteLength(JSON.stringify(outcome.result));
    outcome.result = undefined;
    json = JSON.stringify(outcome);
    if (fitsIn(maxBytes, json)) return json;
  }
  // Then the error's stack, then its message (each bounded, but together maybe over): cut to fit.
  for (const part of ['stack', 'message'] as const) {
    const text = outcome.error?.[part];
    if (outcome.error === undefined || text === undefined) continue;
    omitted[part === 'stack' ? 'stack' : 'errorMessage'] = text.length;
    let keep = text.length;
    while (keep > 0 && !fitsIn(maxBytes, json)) {
      keep = Math.floor(keep / 2);
      outcome.error = { ...outcome.error, [part]: text.slice(0, keep) };
      json = JSON.stringify(outcome);
    }
    if (fitsIn(maxBytes, json)) return json;
  }
  return json;
}

/**
 * A history entry from its stream fields: `i` the task id, `o` the outcome (HistoryOutcome, or the
 * call's result record), `m` the message as received (left out when it did not fit: `ms`, its size).
 */
export function entryFrom(fields: readonly string[]): HistoryEntry | undefined {
  const field = (name: string) => {
    for (let k = 0; k + 1 < fields.length; k += 2) if (fields[k] === name) return fields[k + 1];
    return undefined;
  };
  const id = field('i');
  const o = field('o');
  if (id === undefined || o === undefined) return undefined;
  const outcome = JSON.parse(o) as HistoryOutcome;
  const message = parseMessage(field('m'));
  const omitted = { ...outcome.omitted };
  const size = field('ms');
  if (message === undefined && size !== undefined) omitted.message = Number(size);
  const entry: HistoryEntry = {
    id,
    task: outcome.task,
    state: outcome.state as HistoryState,
    queue: outcome.queue,
    worker: outcome.worker ?? '',
    attempt: outcome.attempts,
    finishedAt: outcome.finishedAt ?? 0,
    rootId: outcome.rootId ?? message?.rootId ?? id,
  };
  if (message?.createdAt !== undefined) entry.createdAt = message.createdAt;
  if (outcome.startedAt !== undefined) entry.startedAt = outcome.startedAt;
  if (outcome.retryAt !== undefined) entry.retryAt = outcome.retryAt;
  if (message !== undefined) {
    entry.args = message.args;
    entry.kwargs = message.kwargs;
    entry.priority = message.priority;
  }
  if (outcome.result !== undefined) entry.result = outcome.result;
  if (outcome.error !== undefined) entry.error = outcome.error;
  if (outcome.deadLetter !== undefined) entry.deadLetter = outcome.deadLetter;
  if (outcome.parentId !== undefined) entry.parentId = outcome.parentId;
  if (message?.groupId !== undefined) entry.groupId = message.groupId;
  const retryOf = message?.headers?.[RETRY_OF_HEADER];
  if (typeof retryOf === 'string') entry.retryOf = retryOf;
  if (Object.keys(omitted).length > 0) entry.omitted = omitted;
  return entry;
}

/** The message's fields the history shows; undefined when it was left out (or is not an object). */
function parseMessage(text: string | undefined): Partial<Envelope> | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Partial<Envelope>)
      : undefined;
  } catch {
    return undefined;
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
