import type { Delivery } from '../brokers/broker.ts';
import type { WorkerHeartbeat } from '../control.ts';
import { TaskRevokedError } from '../errors.ts';
import type { Envelope } from '../message/envelope.ts';
import { LazyChild, type Logger } from '../observe/logger.ts';
import type { WorkerMetrics } from '../observe/metrics.ts';
import type { TaskDefinition } from '../task.ts';
import type { Clock } from './clock.ts';
import { type Execution, execute } from './execute.ts';
import type { Outcomes } from './outcomes.ts';

/** A call in a slot. */
export interface RunningCall {
  readonly delivery: Delivery;
  readonly envelope: Envelope;
  readonly execution: Execution;
  readonly startedAt: number;
  /** The handler has settled: only recording its outcome is left, which shutdown must not cut short. */
  settled: boolean;
}

/** What the slots need of their worker. */
export interface SlotsContext {
  readonly queue: string;
  readonly tasks: ReadonlyMap<string, TaskDefinition>;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Pick<WorkerMetrics, 'forTask'>;
  readonly outcomes: Pick<Outcomes, 'started' | 'finish' | 'unfinished'>;
  /** A slot is free again: a handler is done (its outcome is then recorded outside the slot), or an outcome recorded. */
  freed(): void;
}

/**
 * The calls running now, one per slot (the worker starts no more than its concurrency), and those
 * recording their outcomes: each is run, timed and counted; once its handler is done its slot is free
 * for the next call, and the call stays here until its outcome is recorded.
 */
export class Slots {
  readonly #context: SlotsContext;
  /** Every call here: handlers running, and outcomes being recorded. */
  readonly #running = new Map<string, RunningCall>();
  #recording = 0;
  /** Resolved when the last call leaves (see over()); made only when someone waits. */
  #emptied: PromiseWithResolvers<void> | undefined;

  constructor(context: SlotsContext) {
    this.#context = context;
  }

  /** Calls here now: running, or recording their outcomes. */
  get size(): number {
    return this.#running.size;
  }

  /** Calls whose handlers run now: the slots taken. */
  get busy(): number {
    return this.#running.size - this.#recording;
  }

  /** Calls whose handlers are done and whose outcomes are being recorded. */
  get recording(): number {
    return this.#recording;
  }

  /** The calls whose handlers run now, as a heartbeat lists them. */
  active(): WorkerHeartbeat['active'] {
    return [...this.#running.values()]
      .filter((r) => !r.settled)
      .map((r) => ({
        id: r.envelope.id,
        task: r.envelope.task,
        startedAt: r.startedAt,
        attempt: r.envelope.attempt,
      }));
  }

  /** Ends the running calls of `id` at once (a revoke with terminate): they are recorded REVOKED. */
  terminate(id: string): void {
    for (const running of this.#running.values()) {
      if (running.envelope.id === id) running.execution.abort(new TaskRevokedError(id, 'terminated'));
    }
  }

  /**
   * Resolves once no call is here: every one running or recording now is over (its outcome recorded,
   * or the call handed back). For shutdown, once no new call starts.
   */
  over(): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    this.#emptied ??= Promise.withResolvers<void>();
    return this.#emptied.promise;
  }

  /** A call leaves; the last one to leave resolves over(). */
  #leave(receipt: string): void {
    this.#running.delete(receipt);
    if (this.#running.size === 0 && this.#emptied) {
      this.#emptied.resolve();
      this.#emptied = undefined;
    }
  }

  /**
   * Takes the calls whose handlers still run out of their slots (at the end of the shutdown grace):
   * their outcomes are not recorded, for they are handed back. Those that have settled stay: they are
   * recording their outcome (result, then acknowledgement), and handing them back would run them twice.
   */
  abandon(): RunningCall[] {
    const abandoned = [...this.#running.values()].filter((r) => !r.settled);
    for (const r of abandoned) this.#leave(r.delivery.receipt);
    return abandoned;
  }

  /** Runs a call in a slot, and records its outcome. */
  async run(delivery: Delivery): Promise<void> {
    const { clock, outcomes } = this.#context;
    const envelope = delivery.envelope as Envelope;
    const definition = this.#context.tasks.get(envelope.task) as TaskDefinition;
    const tally = this.#context.metrics.forTask(this.#context.queue, envelope.task);
    const startedAt = clock.now();
    const log = new LazyChild(this.#context.log, {
      task: envelope.task,
      taskId: envelope.id,
      attempt: envelope.attempt,
    });
    const execution = execute(definition, envelope, log, clock);
    const running: RunningCall = { delivery, envelope, execution, startedAt, settled: false };
    this.#running.set(delivery.receipt, running);
    tally.wait.observe(Math.max(0, startedAt - Math.max(delivery.enqueuedAt, envelope.eta ?? 0)) / 1000);
    const started =
      definition.options.trackStarted && !definition.options.ignoreResult
        ? outcomes.started(definition, envelope, startedAt).catch(() => {})
        : undefined;
    const outcome = await execution.outcome;
    running.settled = true;
    tally.duration.observe((clock.now() - startedAt) / 1000);
    if (this.#running.get(delivery.receipt) !== running) {
      // Abandoned at shutdown: already handed back for redelivery, so record nothing.
      return;
    }
    // The handler is done: its slot takes the next call while this one's outcome is recorded.
    this.#recording++;
    this.#context.freed();
    try {
      if (started) await started;
      await outcomes.finish(delivery, envelope, definition, outcome, startedAt, log);
    } catch (error) {
      await outcomes.unfinished(delivery, envelope, definition, error, startedAt, log);
    } finally {
      this.#recording--;
      this.#leave(delivery.receipt);
      this.#context.freed();
    }
  }
}
