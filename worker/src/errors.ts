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
  constructor(message: string) {
    super('CONFIG', message);
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
}

/** Whatever a handler threw — an Error, a string, undefined — as a RecordedError. */
export function recordError(thrown: unknown): RecordedError {
  if (thrown instanceof Error) {
    const code = (thrown as { code?: unknown }).code;
    return {
      name: thrown.name,
      message: thrown.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(thrown.stack ? { stack: thrown.stack } : {}),
    };
  }
  let message: string;
  try {
    message = typeof thrown === 'string' ? thrown : (JSON.stringify(thrown) ?? String(thrown));
  } catch {
    message = String(thrown);
  }
  return { name: 'NonErrorThrown', message: `the handler threw a non-Error value: ${message}` };
}
