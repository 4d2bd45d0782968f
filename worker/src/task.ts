import type { Logger } from './observe/logger.ts';
import type { AsyncResult } from './result.ts';
import type { RetryPolicy } from './runtime/backoff.ts';

/** Options of a task, set when it is defined. All durations are milliseconds. */
export interface TaskOptions extends Partial<RetryPolicy> {
  /** The queue its calls go to. @defaultValue the app's defaultQueue */
  queue?: string;
  /**
   * How many times a failing call is retried, whether the handler threw or called `ctx.retry()`.
   * @defaultValue 0
   */
  maxRetries?: number;
  /**
   * Only these errors are retried automatically (classes, matched with instanceof, or `code` strings);
   * any other fails at once. Unset, every error but UnrecoverableError is retried up to maxRetries.
   */
  autoRetryFor?: readonly (ErrorClass | string)[];
  /**
   * Per worker (Celery's semantics): "10/s", "100/m", "5/h". Calls beyond it wait; other tasks do not.
   */
  rateLimit?: string | number;
  /** 'global' shares the rate limit across every worker (kept in Redis). @defaultValue 'worker' */
  rateLimitScope?: 'worker' | 'global';
  /** After this long, `ctx.signal` aborts with SoftTimeLimitExceededError; the handler may clean up. */
  softTimeLimit?: number;
  /**
   * After this long the call fails with TimeLimitExceededError and its slot is freed. JavaScript cannot
   * kill a promise: a handler that ignores `ctx.signal` runs on in the background, its result discarded.
   */
  timeLimit?: number;
  /** Store no result (faster; `get()` would wait forever). @defaultValue false */
  ignoreResult?: boolean;
  /** Record STARTED when a call starts (one more write per call). @defaultValue false */
  trackStarted?: boolean;
  /** How long results are kept. @defaultValue the app's resultExpires (one day) */
  resultExpires?: number;
  /** Default priority of calls, 0 (most urgent) to 9. @defaultValue 5 */
  priority?: number;
  /** Default expiry of calls: a call not started within this long is revoked. */
  expires?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: matches any error constructor
export type ErrorClass = abstract new (...args: any[]) => Error;

/**
 * Options of one call, as Celery's apply_async takes them. `R` is the call's result type, which a
 * `link` must accept; left out (`never`), links are not type-checked.
 */
export interface ApplyOptions<R = never> {
  /** Run no sooner than this many ms from now. */
  countdown?: number;
  /** Run no sooner than this time. */
  eta?: Date | number;
  /** Revoke if not started by then: a Date, or ms from now. */
  expires?: Date | number;
  priority?: number;
  /** Use this id (idempotent enqueue from your side); a UUID by default. */
  taskId?: string;
  queue?: string;
  /**
   * Kafka's partition key: calls with the same key go to the same partition, and a worker started with
   * `ordered` runs them one at a time, in the order sent. Ignored on Redis.
   */
  key?: string;
  headers?: Record<string, string>;
  /** Overrides the task's maxRetries for this call. */
  maxRetries?: number;
  /** Started with the result as first argument when the call succeeds (Celery's `link`). */
  link?: Canvas<[R], unknown> | readonly Canvas<[R], unknown>[];
  /**
   * Started with a TaskFailure as first argument when the call fails for good — once, not on each
   * retry (Celery's `link_error`).
   */
  linkError?: Canvas<[TaskFailure], unknown> | readonly Canvas<[TaskFailure], unknown>[];
}

/** What an errback receives first: which call failed for good, and how. */
export interface TaskFailure {
  taskId: string;
  task: string;
  error: { name: string; message: string; code?: string };
}

/** What a handler receives first: who it is, and the means to stop or retry. */
export interface TaskContext {
  readonly id: string;
  readonly task: string;
  readonly queue: string;
  /** 1 on the first run, 2 on the first retry, … */
  readonly attempt: number;
  /** Retries left after this attempt. */
  readonly retriesLeft: number;
  /** Aborts at the soft time limit, the hard time limit, on revoke with terminate, and at forced shutdown. */
  readonly signal: AbortSignal;
  readonly headers: Readonly<Record<string, string>>;
  readonly parentId: string | undefined;
  readonly rootId: string;
  readonly log: Logger;
  /**
   * Asks for a retry: `throw ctx.retry({ error, countdown })`. Past maxRetries, the call fails with
   * `error` (or a MaxRetriesExceeded error).
   */
  retry(options?: { error?: unknown; countdown?: number }): Error;
}

export type Handler<A extends unknown[], R> = (ctx: TaskContext, ...args: A) => R | Promise<R>;

/** The arguments after the first: what a chain step is given (the previous result comes first). */
export type Tail<A extends unknown[]> = A extends [unknown, ...infer T] ? T : [];

/** A task as the app knows it: what the worker runs. */
export interface TaskDefinition {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  readonly handler: Handler<unknown[], unknown>;
}

/**
 * Anything that can run: a signature, a chain, a group, a chord. `Missing` are the leading arguments
 * the step before supplies (`[]`: complete, it can be sent as it is); `R` is what it produces.
 */
export interface Canvas<Missing extends unknown[], R> {
  /**
   * Phantom, never set: what it accepts. A function type, so it is checked contravariantly: a step
   * that takes `string | number` may follow one that gives `string`, and a chord callback that takes
   * `number[]` accepts a tuple of numbers.
   */
  readonly __input?: (input: Missing) => void;
  /** Phantom, never set: what it produces. */
  readonly __output?: R;
}

/** A call still to make. `Missing` are the leading arguments a chain will supply. */
export interface Signature<Missing extends unknown[], R> extends Canvas<Missing, R> {
  readonly task: string;
  readonly args: readonly unknown[];
  readonly options: Readonly<ApplyOptions<never>>;
  /** Enqueues it (only a complete signature can be). */
  delay(this: Signature<[], R>): Promise<AsyncResult<R>>;
  applyAsync(this: Signature<[], R>, options?: ApplyOptions<R>): Promise<AsyncResult<R>>;
  /** Same call, other options. */
  set(options: ApplyOptions<R>): Signature<Missing, R>;
  /** Same call, and when it succeeds, `next` runs with its result as first argument. */
  onSuccess(next: Canvas<[R], unknown>): Signature<Missing, R>;
  /** Same call, and when it fails for good (not on a retry), `errback` runs with a TaskFailure. */
  onError(errback: Canvas<[TaskFailure], unknown>): Signature<Missing, R>;
}
