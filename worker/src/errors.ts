import type { ChordFailure } from './message/canvas-spec.ts';

/**
 * Every error Taskfleet throws is a TaskfleetError with a stable `code`: match on the code, not on
 * the message, which is written for people and may improve.
 */
export class TaskfleetError extends Error {
  override name = 'TaskfleetError';
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** Throw from a handler to fail the task at once, whatever its retry options say. */
export class UnrecoverableError extends TaskfleetError {
  override name = 'UnrecoverableError';
  constructor(message: string, options?: ErrorOptions) {
    super('UNRECOVERABLE', message, options);
  }
}

/**
 * A chord that will not run its callback: a member failed for good, was revoked or dead-lettered.
 * It is the chord's result (the callback's), and what the callback's errbacks receive.
 */
export class ChordFailedError extends UnrecoverableError {
  override name = 'ChordFailedError';
  override readonly code: string = 'CHORD_FAILED';
  readonly chordId: string;
  readonly failure: ChordFailure;
  constructor(chordId: string, failure: ChordFailure) {
    const member =
      failure.index < 0 ? '' : `member ${failure.index} (${failure.task ?? 'task'} ${failure.taskId ?? '?'}) failed: `;
    super(`chord ${chordId} failed: ${member}${failure.error.name}: ${failure.error.message}`);
    this.chordId = chordId;
    this.failure = failure;
  }
}

/**
 * A workflow (chain, group, chord) that cannot be sent as declared: codes `EMPTY_CHORD`,
 * `CANVAS_TOO_DEEP`, `CANVAS_TOO_LARGE`, `CANVAS_INVALID`. Thrown when it is declared or enqueued,
 * never later by a worker.
 */
export class CanvasError extends TaskfleetError {
  override name = 'CanvasError';
}

/** A member of a group failed for good: `get()` on the group rejects with it, naming the member. */
export class GroupFailedError extends TaskfleetError {
  override name = 'GroupFailedError';
  readonly groupId: string;
  /** The member's position in the group, from 0. */
  readonly index: number;
  readonly taskId: string;
  constructor(groupId: string, index: number, taskId: string, cause: Error) {
    super('GROUP_MEMBER_FAILED', `group ${groupId}: member ${index} (task ${taskId}) failed: ${cause.message}`, {
      cause,
    });
    this.groupId = groupId;
    this.index = index;
    this.taskId = taskId;
  }
}

/** A task argument (or result) that JSON cannot carry faithfully. */
export class SerializationError extends TaskfleetError {
  override name = 'SerializationError';
  constructor(message: string) {
    super('NOT_JSON', message);
  }
}

/** Bad configuration: a URL, an option, a rate limit string. The message says which and what to do. */
export class ConfigError extends TaskfleetError {
  override name = 'ConfigError';
  constructor(message: string, options?: ErrorOptions) {
    super('CONFIG', message, options);
  }
}

/**
 * A countdown or ETA further ahead than the app's `etaHorizon` (one year unless configured): refused at
 * enqueue, since a call parked that long is more likely a mistake (a year 9999, seconds taken for ms)
 * than a plan, and would sit in the broker unseen until then.
 */
export class EtaBeyondHorizonError extends TaskfleetError {
  override name = 'EtaBeyondHorizonError';
  constructor(task: string, eta: number, now: number, horizonMs: number) {
    const when = Number.isFinite(eta) && Math.abs(eta) <= 8.64e15 ? new Date(eta).toISOString() : String(eta);
    super(
      'ETA_BEYOND_HORIZON',
      `task ${task}: its eta (${when}) is ${span(eta - now)} away, beyond the ${span(horizonMs)} horizon: schedule it nearer (a periodic task, app.schedule, suits work that recurs), or raise the app's etaHorizon (TASKFLEET_ETA_HORIZON, ms)`,
    );
  }
}

/**
 * A result over the app's `maxResultBytes` (1 MiB unless configured): the call fails with it at once
 * (no retry would make it smaller), and so does the chord it is a member of.
 */
export class ResultTooLargeError extends UnrecoverableError {
  override name = 'ResultTooLargeError';
  override readonly code: string = 'RESULT_TOO_LARGE';
  constructor(task: string, bytes: number, maxBytes: number) {
    super(
      `the result of ${task} is ${bytes} bytes, over the ${maxBytes}-byte limit (maxResultBytes): return a reference (an ID, a URL) instead of the data`,
    );
  }
}

/**
 * What follows a call — the rest of its chain, its links, its errbacks, its chord — could not be
 * started or told, for a reason no retry fixes. `code` is the cause's (`INVALID_MESSAGE_TOO_LARGE`,
 * `BAD_ENVELOPE`, `CONFIG`, …); the message says what the call had done and what could not follow.
 */
export class WorkflowError extends TaskfleetError {
  override name = 'WorkflowError';
  /** Whether the call itself had succeeded or failed when what follows could not be started. */
  readonly after: 'success' | 'failure';
  constructor(after: 'success' | 'failure', cause: unknown) {
    const inner = cause instanceof Error ? cause : new Error(String(cause));
    const code = (inner as { code?: unknown }).code;
    super(
      typeof code === 'string' ? code : 'WORKFLOW',
      `${after === 'success' ? 'the call succeeded, but what follows it could not be enqueued' : 'the call failed, but its workflow could not be told'}: ${inner.message}`,
      { cause },
    );
    this.after = after;
  }
}

/** A feature that needs a result backend was used without one. */
export class NoResultBackendError extends TaskfleetError {
  override name = 'NoResultBackendError';
  constructor(what: string) {
    super(
      'NO_RESULT_BACKEND',
      `${what} needs a result backend: pass \`backend: 'redis://…'\` to new Taskfleet(), or set TASKFLEET_BACKEND`,
    );
  }
}

/**
 * A producer call — delay, applyAsync, applyBulk, a workflow's delay, an AsyncResult's reads, forget or
 * revoke — could not reach the broker or the result backend within the app's brokerTimeout (10 s unless
 * configured), or lost its connection after sending. `maybeSent` says which side of the wire the call
 * was on: false, nothing of it was sent and nothing will be (call again once the broker is back); true,
 * it was sent, and the broker may have applied it — or may still, if it is only slow — so calling again
 * may enqueue it twice.
 */
export class BrokerUnavailableError extends TaskfleetError {
  override name = 'BrokerUnavailableError';
  readonly what: 'broker' | 'result backend';
  /** Where, as it may be logged: the URL without its password. */
  readonly url: string;
  readonly maybeSent: boolean;
  constructor(details: {
    what: 'broker' | 'result backend';
    /** Redacted already. */
    url: string;
    timeoutMs: number;
    maybeSent: boolean;
    /** Whether the call gave up because its time was up (else its connection failed first). */
    timedOut: boolean;
    /** What went wrong with the connection, when known: redacted already. */
    reason?: string;
    cause?: unknown;
  }) {
    const { what, url, timeoutMs, maybeSent, timedOut, reason } = details;
    const where = `the ${what} at ${url}`;
    const why = reason ? ` (${reason})` : '';
    const setting =
      what === 'broker'
        ? "TASKFLEET_BROKER, or the app's broker option"
        : "TASKFLEET_BACKEND, or the app's backend option";
    const check = `Check that it runs at that address (${setting})`;
    const wait = `brokerTimeout (TASKFLEET_BROKER_TIMEOUT, ms) sets how long a call waits`;
    const message = !maybeSent
      ? `cannot reach ${where}${timedOut ? ` within ${timeoutMs} ms` : ''}${why}: nothing was sent, and nothing will be. ${check}, then call again; ${wait}.`
      : timedOut
        ? `sent the call to ${where}, which did not answer within ${timeoutMs} ms${why}: the call may have been applied (a task enqueued), or may still be, and calling again may do it twice. ${check} and that it is not overloaded; ${wait}.`
        : `lost the connection to ${where} after sending the call${why}: the call may have been applied (a task enqueued) or not, and calling again may do it twice. ${check}; ${wait}.`;
    super('BROKER_UNAVAILABLE', message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.what = what;
    this.url = url;
    this.maybeSent = maybeSent;
  }
}

/** The task ran past its hard time limit; its slot was freed and the task failed. */
export class TimeLimitExceededError extends TaskfleetError {
  override name = 'TimeLimitExceededError';
  constructor(seconds: number) {
    super('TIME_LIMIT', `the task ran past its time limit of ${seconds}s`);
  }
}

/** The reason a handler's AbortSignal fires at the soft time limit. */
export class SoftTimeLimitExceededError extends TaskfleetError {
  override name = 'SoftTimeLimitExceededError';
  constructor(seconds: number) {
    super('SOFT_TIME_LIMIT', `the task ran past its soft time limit of ${seconds}s`);
  }
}

/** The task was revoked: it will not run, or (terminate) was aborted while running. */
export class TaskRevokedError extends TaskfleetError {
  override name = 'TaskRevokedError';
  constructor(id: string, why = 'revoked') {
    super('REVOKED', `task ${id} was ${why}`);
  }
}

/** Waiting for a result took longer than the caller allowed; the task itself may still finish. */
export class ResultTimeoutError extends TaskfleetError {
  override name = 'ResultTimeoutError';
  constructor(id: string, timeoutMs: number) {
    super('RESULT_TIMEOUT', `task ${id} did not finish within ${timeoutMs} ms (it may still be running)`);
  }
}

/** The error a failed task's result carries when read back: the handler's error, as recorded. */
export class TaskFailedError extends TaskfleetError {
  override name = 'TaskFailedError';
  readonly taskId: string;
  readonly remote: RecordedError;
  constructor(taskId: string, remote: RecordedError) {
    super(remote.code ?? 'TASK_FAILED', `task ${taskId} failed: ${remote.name}: ${remote.message}`);
    this.taskId = taskId;
    this.remote = remote;
  }
}

/** An error as it is stored with a result: JSON, so it survives the trip between processes. */
export interface RecordedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  /** A ChordFailedError's failure: which member failed, and how. */
  chord?: ChordFailure;
}

/** The longest message, name and code a recorded error keeps, in characters; a stack keeps twice as much. */
export const MAX_ERROR_CHARS = 4000;

/**
 * Whatever a handler threw — an Error, a string, undefined — as a RecordedError, each part bounded:
 * results, chord failures and errback arguments carry it, and a handler may throw anything.
 */
export function recordError(thrown: unknown): RecordedError {
  if (thrown instanceof Error) {
    const code = (thrown as { code?: unknown }).code;
    return {
      name: cut(String(thrown.name), 200),
      message: cut(String(thrown.message), MAX_ERROR_CHARS),
      ...(typeof code === 'string' ? { code: cut(code, 200) } : {}),
      ...(thrown.stack ? { stack: cut(String(thrown.stack), 2 * MAX_ERROR_CHARS) } : {}),
      // Kept so that get() on the chord's result can throw a ChordFailedError again, naming the member.
      ...(thrown instanceof ChordFailedError ? { chord: thrown.failure } : {}),
    };
  }
  let message: string;
  try {
    message = typeof thrown === 'string' ? thrown : (JSON.stringify(thrown) ?? String(thrown));
  } catch {
    message = String(thrown);
  }
  return { name: 'NonErrorThrown', message: cut(`the handler threw a non-Error value: ${message}`, MAX_ERROR_CHARS) };
}

/** A duration in words, in the largest unit that gives at least 2 of it: `3 days`, `90 minutes`. */
function span(ms: number): string {
  for (const [unit, size] of [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
  ] as const) {
    if (ms >= 2 * size) return `${Math.round(ms / size).toLocaleString('en-US')} ${unit}s`;
  }
  return `${Math.round(ms / 1000)} s`;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
