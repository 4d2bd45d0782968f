/**
 * Recording how a call ended, before its delivery is acknowledged: its result, a retry, a FAILURE, a
 * call skipped (revoked, expired) or dead-lettered; and, for a call in a workflow, what follows it.
 * Each is recorded first and settled after, so a worker killed in between runs the call again and loses
 * nothing.
 */
import type { Consumer, Delivery, SettledHistory, Settlement } from '../brokers/broker.ts';
import { CanvasRuntime } from '../canvas/runtime.ts';
import {
  EtaBeyondHorizonError,
  type RecordedError,
  ResultTooLargeError,
  recordError,
  TaskRevokedError,
  WorkflowError,
} from '../errors.ts';
import { type HistoryOptions, type HistoryOutcome, outcomeJson } from '../history/entry.ts';
import type { DeadLetterReason, Envelope } from '../message/envelope.ts';
import { fitsIn, type JsonValue } from '../message/json.ts';
import { LogBudget } from '../observe/log-budget.ts';
import type { Logger } from '../observe/logger.ts';
import type { TaskTally, WorkerMetrics } from '../observe/metrics.ts';
import type { ResultBackend, ResultRecord } from '../results/result.ts';
import type { TaskDefinition } from '../task.ts';
import { retryDelayMs } from './backoff.ts';
import type { Clock } from './clock.ts';
import { judgeFailure, type Outcome } from './execute.ts';
import { isPermanent } from './permanent.ts';

/** What a finished attempt leads to. */
export type Decision =
  | { kind: 'success'; value: unknown }
  | { kind: 'retry'; error: unknown; delayMs: number; at: number }
  | { kind: 'fail'; error: unknown }
  | { kind: 'revoked'; error: TaskRevokedError };

/** The app's limits an outcome is judged by (the Taskfleet app has them, and reads each when asked). */
export interface OutcomeLimits {
  readonly maxResultBytes: number;
  readonly etaHorizon: number;
}

/**
 * Decides what a finished attempt leads to: a success (unless its result is too large to be `kept`,
 * stored or passed on), or what judgeFailure says of a failure, a retry being due `delayMs` after
 * `finishedAt` — or failed, when that is beyond the horizon (a countdown in seconds taken for ms).
 */
export function decide(
  definition: TaskDefinition,
  envelope: Envelope,
  outcome: Outcome,
  { finishedAt, kept, limits }: { finishedAt: number; kept: boolean; limits: OutcomeLimits },
  random: () => number = Math.random,
): Decision {
  const tooLarge = outcome.ok && kept ? resultTooLarge(envelope.task, outcome.value, limits.maxResultBytes) : undefined;
  if (outcome.ok && !tooLarge) return { kind: 'success', value: outcome.value };
  const verdict = tooLarge
    ? { kind: 'fail' as const, error: tooLarge }
    : judgeFailure(definition, envelope, (outcome as { error: unknown }).error);
  if (verdict.kind !== 'retry') return verdict;
  const { options } = definition;
  const delayMs =
    verdict.delayMs ??
    retryDelayMs(
      {
        retryDelay: options.retryDelay ?? 1000,
        retryBackoff: options.retryBackoff ?? false,
        retryBackoffMax: options.retryBackoffMax ?? 600_000,
        retryJitter: options.retryJitter ?? true,
      },
      envelope.attempt,
      random,
    );
  const at = finishedAt + delayMs;
  const horizon = limits.etaHorizon;
  if (delayMs > horizon) {
    return { kind: 'fail', error: new EtaBeyondHorizonError(envelope.task, at, finishedAt, horizon) };
  }
  return { kind: 'retry', error: verdict.error, delayMs, at };
}

/** Whether a result is over `maxBytes` as JSON: the error to fail the call with, if so. */
export function resultTooLarge(task: string, value: unknown, maxBytes: number): ResultTooLargeError | undefined {
  const text = JSON.stringify(value ?? null);
  return fitsIn(maxBytes, text) ? undefined : new ResultTooLargeError(task, Buffer.byteLength(text), maxBytes);
}

/** What recording outcomes reads of the app; the Taskfleet app satisfies it. */
export interface OutcomeApp extends OutcomeLimits {
  readonly hasBackend: boolean;
  /** Read only when the app has a backend. */
  readonly backend: Pick<ResultBackend, 'store'>;
  readonly resultExpires: number;
}

/** What recording outcomes needs of its worker. */
export interface OutcomeContext {
  readonly app: OutcomeApp;
  /** The worker's id, recorded with each result. */
  readonly worker: string;
  readonly queue: string;
  readonly log: Logger;
  readonly clock: Pick<Clock, 'now'>;
  readonly metrics: Pick<WorkerMetrics, 'forTask' | 'deadLetters'>;
  /** What follows a call in its workflow: chains, chords, links and errbacks. */
  readonly workflows: Pick<CanvasRuntime, 'succeeded' | 'failed'>;
  /** The task history's options, when the worker keeps one (and its consumer can: Consumer.keepsHistory). */
  readonly history?: HistoryOptions;
  /** The consumer deliveries are settled with (the worker has one whenever it has a delivery). */
  consumer(): Pick<Consumer, 'settle' | 'release' | 'drop' | 'storesResults' | 'keepsHistory'>;
}

type Counted = 'success' | 'failure' | 'retry' | 'revoked' | 'expired';

export class Outcomes {
  readonly #context: OutcomeContext;
  readonly #processed: Record<string, number> = {};
  #limits: OutcomeLimits | undefined;

  /** Dead letters are logged a few per reason and minute; the rest are counted (a flood must not flood the log). */
  readonly #deadLetterLog: LogBudget;

  constructor(context: OutcomeContext) {
    this.#context = context;
    this.#deadLetterLog = new LogBudget({ now: () => context.clock.now() });
  }

  /** Calls finished here so far, by how they ended (a copy). */
  get processed(): Record<string, number> {
    return { ...this.#processed };
  }

  /** Records a call STARTED (for tasks with trackStarted). */
  started(definition: TaskDefinition, envelope: Envelope, startedAt: number): Promise<void> {
    return this.#store(definition, { ...this.#record(envelope, 'STARTED'), startedAt });
  }

  /** Records a finished attempt, and what follows it, then settles its delivery. */
  async finish(
    delivery: Delivery,
    envelope: Envelope,
    definition: TaskDefinition,
    outcome: Outcome,
    startedAt: number,
    log: Logger,
  ): Promise<void> {
    const { app } = this.#context;
    const consumer = this.#context.consumer();
    const finishedAt = this.#context.clock.now();
    const kept = (!definition.options.ignoreResult && app.hasBackend) || CanvasRuntime.involved(envelope);
    // The app's limits, read once (each is an environment lookup): they cannot change once consuming.
    this.#limits ??= { maxResultBytes: app.maxResultBytes, etaHorizon: app.etaHorizon };
    const decision = decide(definition, envelope, outcome, { finishedAt, kept, limits: this.#limits });
    if (decision.kind === 'success') {
      if (CanvasRuntime.involved(envelope)) {
        await permanentAs('success', this.#context.workflows.succeeded(envelope, decision.value as JsonValue));
      }
      // Not even built for a task that keeps no results, history off: this is every call's path.
      const record = this.#recorded(definition)
        ? {
            ...this.#record(envelope, 'SUCCESS'),
            result: decision.value as ResultRecord['result'],
            startedAt,
            finishedAt,
          }
        : undefined;
      await this.#settleWith(delivery, { kind: 'ack' }, definition, record);
      this.#count(envelope, 'success');
      log.debug('task succeeded', { ms: finishedAt - startedAt });
      return;
    }
    if (decision.kind === 'retry') {
      const error = recordError(decision.error);
      const at = decision.at;
      const record = this.#recorded(definition)
        ? { ...this.#record(envelope, 'RETRY'), error, startedAt, finishedAt, retryAt: at }
        : undefined;
      const next: Envelope = { ...envelope, attempt: envelope.attempt + 1, eta: at };
      await this.#settleWith(delivery, { kind: 'requeue', envelope: next, at }, definition, record);
      this.#count(envelope, 'retry').retries++;
      log.warn('task failed; retrying', { error, retryInMs: decision.delayMs });
      return;
    }
    const error = recordError(decision.error);
    const state = decision.kind === 'revoked' ? 'REVOKED' : 'FAILURE';
    const record = { ...this.#record(envelope, state), error, startedAt, finishedAt };
    if (CanvasRuntime.involved(envelope)) {
      // Recorded before its workflow is told (its errbacks may read it), acknowledged after.
      await this.#store(definition, record);
      await permanentAs('failure', this.#context.workflows.failed(envelope, error, state));
      await consumer.settle(delivery, { kind: 'ack', ...this.#history(record) });
    } else {
      await this.#settleWith(delivery, { kind: 'ack' }, definition, record);
    }
    this.#count(envelope, decision.kind === 'revoked' ? 'revoked' : 'failure');
    log.warn(decision.kind === 'revoked' ? 'task terminated' : 'task failed', { error });
  }

  /**
   * The outcome could not be recorded. An error no retry fixes (a next step over the size limit, a
   * message the broker refuses, a misconfiguration) ends the call at once: FAILURE with the error, its
   * workflow told; and when even that cannot be passed on, a dead letter saying why. Any other failure
   * (the broker or backend away) hands the call back, counted, so one whose outcome can never be
   * recorded ends as poison after maxDeliveries instead of running again and again.
   */
  async unfinished(
    delivery: Delivery,
    envelope: Envelope,
    definition: TaskDefinition,
    error: unknown,
    startedAt: number,
    log: Logger,
  ): Promise<void> {
    const consumer = this.#context.consumer();
    const handBack = async (cause: unknown) => {
      log.error('could not record the outcome; handing the call back (counted toward maxDeliveries)', {
        error: cause,
        deliveries: delivery.deliveries,
      });
      await consumer.release([delivery], { counted: true }).catch(() => consumer.drop(delivery));
    };
    if (!isPermanent(error)) return handBack(error);
    const recorded = recordError(error);
    const unrecordable = (cause: unknown) =>
      this.#deadLetter(delivery, 'unrecordable', `its outcome could not be recorded: ${messageOf(cause)}`, {
        store: false,
        tell: false,
      }).catch((failure) => this.#dropped(delivery, failure));
    // Its FAILURE is stored already; only its workflow could not be told, and telling it again would fail the same way.
    if (error instanceof WorkflowError && error.after === 'failure') return unrecordable(error);
    try {
      const finishedAt = this.#context.clock.now();
      const record = { ...this.#record(envelope, 'FAILURE'), error: recorded, startedAt, finishedAt };
      await this.#store(definition, record);
      if (CanvasRuntime.involved(envelope)) {
        await permanentAs('failure', this.#context.workflows.failed(envelope, recorded, 'FAILURE'));
      }
      await consumer.settle(delivery, { kind: 'ack', ...this.#history(record) });
      this.#count(envelope, 'failure');
      log.error('task failed: its outcome cannot be recorded as it is', { error: recorded });
    } catch (again) {
      if (!isPermanent(again)) return handBack(again);
      await unrecordable(again);
    }
  }

  /** Dead-letters a delivery that cannot run (see #deadLetter); a failure to is logged, never thrown. */
  deadLetter(delivery: Delivery, reason: DeadLetterReason, detail: string): void {
    this.#settleSafely(delivery, () => this.#deadLetter(delivery, reason, detail));
  }

  /** Records a revoked or expired call REVOKED and acknowledges it instead of running it; never throws. */
  skip(delivery: Delivery, envelope: Envelope, definition: TaskDefinition, why: 'revoked' | 'expired'): void {
    this.#settleSafely(delivery, () => this.#skip(delivery, envelope, definition, why));
  }

  /** Puts a call that has not run back on its queue, due at `at`; never throws. */
  putBack(delivery: Delivery, at: number): void {
    const envelope = delivery.envelope as Envelope;
    this.#settleSafely(delivery, () => this.#context.consumer().settle(delivery, { kind: 'requeue', envelope, at }));
  }

  /** Logs how many dead letters went unlogged (at shutdown). */
  flushLog(): void {
    for (const [reason, count] of this.#deadLetterLog.drain()) this.#logSuppressed(reason, count);
  }

  async #skip(delivery: Delivery, envelope: Envelope, definition: TaskDefinition, why: 'revoked' | 'expired') {
    const error = recordError(
      new TaskRevokedError(envelope.id, why === 'expired' ? 'expired before it started' : 'revoked'),
    );
    const finishedAt = this.#context.clock.now();
    const record = { ...this.#record(envelope, 'REVOKED'), error, finishedAt };
    if (CanvasRuntime.involved(envelope)) {
      await this.#store(definition, record);
      try {
        await this.#context.workflows.failed(envelope, error, 'REVOKED');
      } catch (failure) {
        if (!isPermanent(failure)) throw failure;
        // REVOKED is recorded; its chord or chain cannot be told, and never will be: say so where it shows.
        const detail = `it was ${why} and not run, but its workflow could not be told: ${messageOf(failure)}`;
        return this.#deadLetter(delivery, 'unrecordable', detail, { store: false, tell: false });
      }
      await this.#context.consumer().settle(delivery, { kind: 'ack', ...this.#history(record) });
    } else {
      await this.#settleWith(delivery, { kind: 'ack' }, definition, record);
    }
    this.#count(envelope, why);
    this.#context.log.info(`task ${why}: not run`, { task: envelope.task, taskId: envelope.id });
  }

  /**
   * Moves a delivery to the dead-letter store. With an envelope, its call is recorded FAILURE (`store`)
   * and its chain, chord and errbacks are failed (`tell`) first, so nothing waits on it forever. When
   * those cannot be done for a reason no retry fixes — or for any reason, for poison, which has been
   * tried often enough — the letter goes anyway, its detail saying what could not be told.
   */
  async #deadLetter(
    delivery: Delivery,
    reason: DeadLetterReason,
    detail: string,
    { store = true, tell = true }: { store?: boolean; tell?: boolean } = {},
  ): Promise<void> {
    const { app, log, metrics, queue } = this.#context;
    const envelope = delivery.envelope;
    const finishedAt = this.#context.clock.now();
    let letter = detail;
    let history: { history: SettledHistory } | undefined;
    if (envelope) {
      // Whoever waits on this call learns it failed, and why, instead of waiting forever; requeueing
      // the dead letter (taskfleet dlq requeue) runs it again and overwrites this.
      const error: RecordedError = {
        name: 'DeadLettered',
        code: reason,
        message: `dead-lettered (${reason}): ${detail}`,
      };
      const record = { ...this.#record(envelope, 'FAILURE'), error, finishedAt };
      history = this.#history({ ...record, deadLetter: reason });
      try {
        if (store && app.hasBackend) await app.backend.store(record, app.resultExpires);
        // A dead letter fails for good: its chain, chord and errbacks must learn it too, or wait forever.
        if (tell && CanvasRuntime.involved(envelope))
          await permanentAs('failure', this.#context.workflows.failed(envelope, error, 'FAILURE'));
      } catch (failure) {
        if (!isPermanent(failure) && reason !== 'poison') throw failure;
        letter = `${detail}; its failure could not be recorded or its workflow told: ${messageOf(failure)}`;
      }
    }
    await this.#context.consumer().settle(delivery, { kind: 'dead-letter', reason, detail: letter, ...history });
    metrics.deadLetters.inc({ queue, reason });
    const { write, suppressed } = this.#deadLetterLog.take(reason);
    if (suppressed > 0) this.#logSuppressed(reason, suppressed);
    if (write) {
      log.error('message dead-lettered', {
        reason,
        detail: letter,
        taskId: delivery.envelope?.id,
        receipt: delivery.receipt,
      });
    }
  }

  #logSuppressed(reason: string, count: number): void {
    this.#context.log.error('more messages dead-lettered than logged', {
      reason,
      notLogged: count,
      hint: 'taskfleet_dead_letters_total counts them all; taskfleet dlq list shows them',
    });
  }

  /** A settlement outside a running call: its failure must not crash the worker, nor leave the delivery held forever. */
  #settleSafely(delivery: Delivery, settle: () => Promise<void>): void {
    settle().catch((error) => this.#dropped(delivery, error));
  }

  /** Gives a delivery that could not be settled up: it is redelivered, counted, after the visibility timeout. */
  #dropped(delivery: Delivery, error: unknown): void {
    this.#context.log.error('could not settle a delivery: it is redelivered after the visibility timeout', {
      error,
      receipt: delivery.receipt,
      deliveries: delivery.deliveries,
    });
    this.#context.consumer().drop(delivery);
  }

  /** Counts a call finished here; its task's tally. */
  #count(envelope: Envelope, outcome: Counted): TaskTally {
    const tally = this.#context.metrics.forTask(this.#context.queue, envelope.task);
    tally.outcomes[outcome]++;
    this.#processed[outcome] = (this.#processed[outcome] ?? 0) + 1;
    return tally;
  }

  #record(envelope: Envelope, state: ResultRecord['state']): ResultRecord {
    return {
      id: envelope.id,
      task: envelope.task,
      state,
      attempts: envelope.attempt,
      queue: envelope.queue,
      worker: this.#context.worker,
      ...(envelope.parentId !== undefined ? { parentId: envelope.parentId } : {}),
      rootId: envelope.rootId,
    };
  }

  /** The history's bounds, when the worker keeps one and its consumer can. */
  #historyLimits(): HistoryOptions | undefined {
    const options = this.#context.history;
    return options !== undefined && this.#context.consumer().keepsHistory ? options : undefined;
  }

  /**
   * The attempt's entry in the task history, to spread into its settlement, when the worker keeps one
   * and its consumer can; else nothing (the settlement then has no `history`).
   */
  #history(outcome: HistoryOutcome): { history: SettledHistory } | undefined {
    const limits = this.#historyLimits();
    if (limits === undefined) return undefined;
    return { history: { id: outcome.id, outcome: outcomeJson(outcome, limits.maxEntryBytes) } };
  }

  /** Whether a call of this task has a record to write: its result is stored, or the history is kept. */
  #recorded(definition: TaskDefinition): boolean {
    return this.#keeps(definition) || this.#historyLimits() !== undefined;
  }

  /** Whether a call of this task has its outcome stored: it has a backend and does not ignore results. */
  #keeps(definition: TaskDefinition): boolean {
    return !definition.options.ignoreResult && this.#context.app.hasBackend;
  }

  /** How long this task's results are kept, ms. */
  #ttlMs(definition: TaskDefinition): number {
    return definition.options.resultExpires ?? this.#context.app.resultExpires;
  }

  #store(definition: TaskDefinition, record: ResultRecord): Promise<void> {
    if (!this.#keeps(definition)) return Promise.resolve();
    return this.#context.app.backend.store(record, this.#ttlMs(definition));
  }

  /**
   * Settles a delivery with its call's `record` recorded first (none, or a task that keeps no results:
   * nothing to store): in the same atomic write when the consumer stores results (the backend is the
   * broker's Redis), else through the backend and then the settlement — two writes, the record always
   * before the settlement.
   */
  async #settleWith(
    delivery: Delivery,
    settlement: Settlement,
    definition: TaskDefinition,
    record: ResultRecord | undefined,
  ): Promise<void> {
    const consumer = this.#context.consumer();
    if (record === undefined) return consumer.settle(delivery, settlement);
    if (!this.#keeps(definition)) return consumer.settle(delivery, { ...settlement, ...this.#history(record) });
    if (consumer.storesResults) {
      const json = JSON.stringify(record);
      const result = { id: record.id, json, ttlMs: this.#ttlMs(definition) };
      // In the history, the result record itself is the outcome, when it fits in an entry.
      const limits = this.#historyLimits();
      const history =
        limits === undefined
          ? undefined
          : fitsIn(limits.maxEntryBytes, json)
            ? { history: { id: record.id } }
            : this.#history(record);
      return consumer.settle(delivery, { ...settlement, result, ...history });
    }
    await this.#store(definition, record);
    await consumer.settle(delivery, { ...settlement, ...this.#history(record) });
  }
}

/**
 * Runs a step of what follows a call, turning an error no retry fixes into a WorkflowError that says
 * whether the call had succeeded or failed; any other error passes as it is.
 */
async function permanentAs(after: 'success' | 'failure', step: Promise<void>): Promise<void> {
  try {
    await step;
  } catch (error) {
    throw isPermanent(error) && !(error instanceof WorkflowError) ? new WorkflowError(after, error) : error;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
