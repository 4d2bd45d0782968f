import { randomUUID } from 'node:crypto';
import { EtaBeyondHorizonError, TaskfleetError } from '../errors.ts';
import {
  type ChordFailure,
  type ChordRef,
  type Flow,
  flowProblems,
  isChordFailure,
  isChordRef,
} from './canvas-spec.ts';
import { assertJson, fitsIn, type JsonValue } from './json.ts';
import { isQueueName } from './names.ts';

export type { ChordFailure, ChordRef, ChordSpec, Flow, GroupSpec, NodeSpec, SignatureSpec } from './canvas-spec.ts';

/** The envelope version this code writes and reads. A worker dead-letters any other. */
export const ENVELOPE_VERSION = 1;

/** A task call as it travels: JSON only, validated when written and again when read. */
export interface Envelope {
  v: typeof ENVELOPE_VERSION;
  /** The task id: also the id of its result. */
  id: string;
  /** The registered task name. */
  task: string;
  args: JsonValue[];
  kwargs: Record<string, JsonValue>;
  queue: string;
  /** 1 on the first run, 2 on the first retry, … */
  attempt: number;
  /** Overrides the task's `maxRetries` for this call. */
  maxRetries?: number;
  /** Not before this time (epoch ms). */
  eta?: number;
  /** Not after this time (epoch ms): a task that starts later is recorded REVOKED and not run. */
  expires?: number;
  /** 0 (most urgent) … 9; see `priorityLane`. */
  priority: number;
  /**
   * The partition key on Kafka: calls with the same key go to the same partition, and an `ordered`
   * worker runs them one at a time, in order. Unused on Redis.
   */
  key?: string;
  parentId?: string;
  rootId: string;
  groupId?: string;
  /** What still runs after this task, each step receiving the previous result as first argument. */
  chain?: Flow;
  /** The chord slot this call's result fills (see canvas-spec.ts). */
  chord?: ChordRef;
  /** Flows started with the result when the call succeeds. */
  link?: Flow[];
  /** Flows started with a TaskFailure when the call fails for good. */
  linkError?: Flow[];
  /** On a chord's callback: the chord failed, so the callback fails with this instead of running. */
  chordError?: ChordFailure;
  createdAt: number;
  headers: Record<string, string>;
}

export type DeadLetterReason =
  | 'malformed'
  | 'unsupported-version'
  | 'too-large'
  | 'unknown-task'
  | 'poison'
  /** The call ran, but its outcome could not be recorded or passed on for a reason no retry fixes. */
  | 'unrecordable'
  | 'abandoned';

/** A message that cannot be run, with why: it goes to the dead-letter store, never back to the queue. */
export class InvalidMessageError extends TaskfleetError {
  override name = 'InvalidMessageError';
  readonly reason: DeadLetterReason;
  constructor(reason: DeadLetterReason, message: string) {
    super(`INVALID_MESSAGE_${reason.toUpperCase().replaceAll('-', '_')}`, message);
    this.reason = reason;
  }
}

/** @defaultValue 1 MiB: the size above which a message is refused at enqueue and dead-lettered on read. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/** @defaultValue 1 MiB: the size of JSON above which a result fails its call (ResultTooLargeError). */
export const DEFAULT_MAX_RESULT_BYTES = 1024 * 1024;
/** @defaultValue one year: the furthest ahead a countdown or ETA may be (EtaBeyondHorizonError). */
export const DEFAULT_ETA_HORIZON_MS = 365 * 24 * 3600 * 1000;

export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 9;
export const DEFAULT_PRIORITY = 5;

/**
 * Priorities map onto three lanes, each a stream read in order: 0–2 urgent, 3–6 normal, 7–9 low.
 * Three, not ten, because every lane is a stream the worker reads and the operator probes.
 */
export function priorityLane(priority: number): 0 | 1 | 2 {
  return priority <= 2 ? 0 : priority <= 6 ? 1 : 2;
}
export const LANES = [0, 1, 2] as const;

export interface NewEnvelope {
  task: string;
  args: readonly unknown[];
  queue: string;
  id?: string;
  eta?: number;
  expires?: number;
  priority?: number;
  maxRetries?: number;
  key?: string;
  parentId?: string;
  rootId?: string;
  groupId?: string;
  chain?: Flow;
  chord?: ChordRef;
  link?: Flow[];
  linkError?: Flow[];
  headers?: Record<string, string>;
  now?: number;
  /** An `eta` further than this after `now` is refused (EtaBeyondHorizonError). @defaultValue one year */
  etaHorizonMs?: number;
}

/** Builds an envelope, refusing arguments that are not JSON with an error naming the argument. */
export function createEnvelope(input: NewEnvelope): Envelope {
  input.args.forEach((arg, i) => {
    assertJson(arg, `argument ${i + 1} of ${input.task}`);
  });
  const priority = input.priority ?? DEFAULT_PRIORITY;
  if (!Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
    throw new TaskfleetError('BAD_PRIORITY', `priority must be an integer from 0 (most urgent) to 9, not ${priority}`);
  }
  if (input.headers) assertJson(input.headers, 'headers');
  const now = input.now ?? Date.now();
  const horizon = input.etaHorizonMs ?? DEFAULT_ETA_HORIZON_MS;
  if (input.eta !== undefined && input.eta - now > horizon) {
    throw new EtaBeyondHorizonError(input.task, input.eta, now, horizon);
  }
  const id = input.id ?? randomUUID();
  const envelope: Envelope = {
    v: ENVELOPE_VERSION,
    id,
    task: input.task,
    args: input.args as JsonValue[],
    kwargs: {},
    queue: input.queue,
    attempt: 1,
    priority,
    rootId: input.rootId ?? id,
    createdAt: now,
    headers: input.headers ?? {},
  };
  if (input.maxRetries !== undefined) envelope.maxRetries = input.maxRetries;
  if (input.eta !== undefined) envelope.eta = input.eta;
  if (input.expires !== undefined) envelope.expires = input.expires;
  if (input.key !== undefined) envelope.key = input.key;
  if (input.parentId !== undefined) envelope.parentId = input.parentId;
  if (input.groupId !== undefined) envelope.groupId = input.groupId;
  if (input.chain !== undefined && input.chain.length > 0) envelope.chain = input.chain;
  if (input.chord !== undefined) envelope.chord = input.chord;
  if (input.link !== undefined && input.link.length > 0) envelope.link = input.link;
  if (input.linkError !== undefined && input.linkError.length > 0) envelope.linkError = input.linkError;
  // The worker checks the same on reading: refuse here what it would dead-letter there (an `eta` from
  // an invalid Date, an empty id), so the caller gets the error instead of a silent dead letter.
  const problems = envelopeProblems(envelope as unknown as Record<string, unknown>);
  if (problems.length > 0) {
    throw new TaskfleetError('BAD_ENVELOPE', `task ${input.task} cannot be enqueued: ${problems.join('; ')}`);
  }
  return envelope;
}

/** JSON text of an envelope, refused if larger than `maxBytes`. */
export function encodeEnvelope(envelope: Envelope, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): string {
  const text = JSON.stringify(envelope);
  if (!fitsIn(maxBytes, text)) {
    throw new InvalidMessageError(
      'too-large',
      `task ${envelope.task} is ${Buffer.byteLength(text)} bytes, over the ${maxBytes}-byte limit: pass a reference (an ID, a URL) instead of the data`,
    );
  }
  return text;
}

/** Parses and validates a message read from a broker; throws InvalidMessageError with the reason. */
export function decodeEnvelope(text: string, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): Envelope {
  if (!fitsIn(maxBytes, text)) {
    throw new InvalidMessageError('too-large', `the message is ${Buffer.byteLength(text)} bytes, over ${maxBytes}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidMessageError('malformed', `the message is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidMessageError('malformed', 'the message is not a JSON object');
  }
  const m = value as Record<string, unknown>;
  // A version that is not a version (missing, a string) is a message that is not ours, malformed like any
  // other missing or wrong field; a version number other than ours is a message of another release.
  if (!Number.isInteger(m.v) || (m.v as number) < 1) {
    const problems = [
      `v must be the envelope version, an integer (this worker reads ${ENVELOPE_VERSION})`,
      ...envelopeProblems(m),
    ];
    throw new InvalidMessageError('malformed', `invalid envelope: ${problems.join('; ')}`);
  }
  if (m.v !== ENVELOPE_VERSION) {
    throw new InvalidMessageError(
      'unsupported-version',
      `envelope version ${JSON.stringify(m.v)} is not supported by this worker (it reads version ${ENVELOPE_VERSION})`,
    );
  }
  const problems = envelopeProblems(m);
  if (problems.length > 0) throw new InvalidMessageError('malformed', `invalid envelope: ${problems.join('; ')}`);
  return m as unknown as Envelope;
}

/** What is wrong with the fields of an envelope of this version, one phrase per field; empty if nothing. */
function envelopeProblems(m: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const need = (field: string, ok: boolean, what: string) => {
    if (!ok) problems.push(`${field} must be ${what}`);
  };
  const isString = (x: unknown) => typeof x === 'string' && x.length > 0;
  const isTime = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const isRecord = (x: unknown): x is Record<string, unknown> =>
    typeof x === 'object' && x !== null && !Array.isArray(x);
  need('id', isString(m.id), 'a non-empty string');
  need('task', isString(m.task), 'a non-empty string');
  need('args', Array.isArray(m.args), 'an array');
  need('kwargs', isRecord(m.kwargs), 'an object');
  need(
    'queue',
    isQueueName(m.queue),
    "a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
  );
  need('attempt', Number.isInteger(m.attempt) && (m.attempt as number) >= 1, 'an integer ≥ 1');
  need(
    'maxRetries',
    m.maxRetries === undefined || (Number.isInteger(m.maxRetries) && (m.maxRetries as number) >= 0),
    'an integer ≥ 0',
  );
  need('eta', m.eta === undefined || isTime(m.eta), 'a timestamp in ms');
  need('expires', m.expires === undefined || isTime(m.expires), 'a timestamp in ms');
  need('priority', Number.isInteger(m.priority) && (m.priority as number) >= 0 && (m.priority as number) <= 9, '0–9');
  need('key', m.key === undefined || isString(m.key), 'a non-empty string');
  need('parentId', m.parentId === undefined || isString(m.parentId), 'a non-empty string');
  need('rootId', isString(m.rootId), 'a non-empty string');
  need('groupId', m.groupId === undefined || isString(m.groupId), 'a non-empty string');
  // An empty chain is nothing left to run: accepted, as earlier versions did.
  if (m.chain !== undefined && !(Array.isArray(m.chain) && m.chain.length === 0))
    problems.push(...flowProblems(m.chain, 'chain'));
  need(
    'chord',
    m.chord === undefined || isChordRef(m.chord),
    'a chord slot {id, index, queue} with a valid queue name',
  );
  for (const field of ['link', 'linkError'] as const) {
    const links = m[field];
    if (links === undefined) continue;
    if (!Array.isArray(links)) problems.push(`${field} must be an array of flows`);
    else
      links.forEach((flow, i) => {
        problems.push(...flowProblems(flow, `${field}[${i}]`));
      });
  }
  need('chordError', m.chordError === undefined || isChordFailure(m.chordError), 'a chord failure');
  need('createdAt', isTime(m.createdAt), 'a timestamp in ms');
  need(
    'headers',
    isRecord(m.headers) && Object.values(m.headers).every((value) => typeof value === 'string'),
    'an object of strings',
  );
  return problems;
}
