import {
  ChordFailedError,
  SoftTimeLimitExceededError,
  TaskfleetError,
  TaskRevokedError,
  TimeLimitExceededError,
  UnrecoverableError,
} from '../errors.ts';
import type { Envelope } from '../message/envelope.ts';
import { assertJson } from '../message/json.ts';
import type { Logger } from '../observe/logger.ts';
import type { TaskContext, TaskDefinition } from '../task.ts';
import { type Clock, systemClock, type Timer } from './clock.ts';

/** What `ctx.retry()` returns for the handler to throw. */
export class RetryRequest extends TaskfleetError {
  override name = 'RetryRequest';
  readonly countdown: number | undefined;
  readonly error: unknown;
  constructor(error: unknown, countdown: number | undefined) {
    super('RETRY', error instanceof Error ? `retry requested: ${error.message}` : 'retry requested');
    this.error = error;
    this.countdown = countdown;
  }
}

export class MaxRetriesExceededError extends TaskfleetError {
  override name = 'MaxRetriesExceededError';
  constructor(task: string, maxRetries: number) {
    super('MAX_RETRIES_EXCEEDED', `task ${task} asked to retry, but it has used all ${maxRetries} retries`);
  }
}

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A call being run: abort it to terminate it (revoke) or give up on it (forced shutdown). */
export interface Execution {
  readonly outcome: Promise<Outcome>;
  /** Stops waiting for the handler: the outcome becomes a failure with `reason`, the signal fires. */
  abort(reason: Error): void;
}

/**
 * Runs a handler with its context and limits. Whatever the handler does — returns, throws a string,
 * never settles, returns something JSON cannot carry — the outcome settles, at the latest at the hard
 * time limit or when aborted. The time limits are timeouts of `clock`.
 */
export function execute(
  definition: TaskDefinition,
  envelope: Envelope,
  log: Logger,
  clock: Pick<Clock, 'timeout'> = systemClock,
): Execution {
  if (envelope.chordError) {
    // The callback of a chord that failed: it does not run, it fails, and so the chord's result is
    // FAILURE and its errbacks run, as for any call that fails for good.
    const outcome: Outcome = { ok: false, error: new ChordFailedError(envelope.id, envelope.chordError) };
    return { outcome: Promise.resolve(outcome), abort: () => {} };
  }
  const controller = new AbortController();
  const { softTimeLimit, timeLimit } = definition.options;
  const maxRetries = envelope.maxRetries ?? definition.options.maxRetries ?? 0;
  let soft: Timer | undefined;
  let hard: Timer | undefined;
  let settle!: (outcome: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => {
    settle = resolve;
  });
  // Whichever comes first — the handler, the hard time limit, an abort — settles the outcome; the
  // others change nothing. One promise, not a race of several: this runs for every call.
  const finish = (result: Outcome) => {
    soft?.cancel();
    hard?.cancel();
    settle(result);
  };
  const abort = (reason: Error) => {
    if (!controller.signal.aborted) controller.abort(reason);
    finish({ ok: false, error: reason });
  };
  if (softTimeLimit !== undefined) {
    soft = clock.timeout(softTimeLimit, () => controller.abort(new SoftTimeLimitExceededError(softTimeLimit / 1000)));
  }
  if (timeLimit !== undefined) {
    hard = clock.timeout(timeLimit, () => abort(new TimeLimitExceededError(timeLimit / 1000)));
  }
  const ctx: TaskContext = {
    id: envelope.id,
    task: envelope.task,
    queue: envelope.queue,
    attempt: envelope.attempt,
    retriesLeft: Math.max(0, maxRetries - (envelope.attempt - 1)),
    signal: controller.signal,
    headers: envelope.headers,
    parentId: envelope.parentId,
    rootId: envelope.rootId,
    log,
    retry: requestRetry,
  };
  // After a time limit or an abort, neither changes anything: the handler's late outcome is ignored.
  const failed = (error: unknown) => finish({ ok: false, error });
  const returned = (value: unknown) => {
    try {
      // A handler that returns nothing (a void task) has the result null, not a serialisation error.
      if (value !== undefined) assertJson(value, `the result of ${envelope.task}`);
    } catch (error) {
      return failed(error);
    }
    finish({ ok: true, value: value ?? null });
  };
  let value: unknown;
  try {
    value = definition.handler(ctx, ...envelope.args);
  } catch (error) {
    failed(error);
    return { outcome, abort };
  }
  // A handler that returns a value, not a promise, is done now: no promise is made to wait for it.
  if (isThenable(value)) Promise.resolve(value).then(returned, failed);
  else returned(value);
  return { outcome, abort };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function requestRetry({ error, countdown }: { error?: unknown; countdown?: number } = {}): RetryRequest {
  return new RetryRequest(error, countdown);
}

export type Verdict =
  | { kind: 'retry'; delayMs: number | undefined; error: unknown }
  | { kind: 'fail'; error: unknown }
  | { kind: 'revoked'; error: TaskRevokedError };

/** Decides what a failed attempt leads to, from the error and the task's retry options. */
export function judgeFailure(definition: TaskDefinition, envelope: Envelope, error: unknown): Verdict {
  if (error instanceof TaskRevokedError) return { kind: 'revoked', error };
  const maxRetries = envelope.maxRetries ?? definition.options.maxRetries ?? 0;
  const retriesLeft = maxRetries - (envelope.attempt - 1);
  if (error instanceof RetryRequest) {
    if (retriesLeft > 0) return { kind: 'retry', delayMs: error.countdown, error: error.error };
    return { kind: 'fail', error: error.error ?? new MaxRetriesExceededError(envelope.task, maxRetries) };
  }
  if (error instanceof UnrecoverableError || retriesLeft <= 0) return { kind: 'fail', error };
  const only = definition.options.autoRetryFor;
  if (only && !only.some((match) => matches(error, match))) return { kind: 'fail', error };
  return { kind: 'retry', delayMs: undefined, error };
}

function matches(error: unknown, match: NonNullable<TaskDefinition['options']['autoRetryFor']>[number]): boolean {
  if (typeof match === 'string') {
    const e = error as { code?: unknown; name?: unknown } | null;
    return e?.code === match || e?.name === match;
  }
  return error instanceof match;
}
