import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Taskfleet } from '../app.ts';
import type { Consumer, Delivery } from '../brokers/broker.ts';
import { redact } from '../brokers/redact.ts';
import type { Redis, Scripts } from '../brokers/redis/connection.ts';
import { appKeys } from '../brokers/redis/keys.ts';
import { CanvasRuntime } from '../canvas/runtime.ts';
import type { ControlMessage, WorkerHeartbeat } from '../control.ts';
import {
  ConfigError,
  EtaBeyondHorizonError,
  ResultTooLargeError,
  recordError,
  TaskRevokedError,
  WorkflowError,
} from '../errors.ts';
import type { DeadLetterReason, Envelope } from '../message/envelope.ts';
import type { JsonValue } from '../message/json.ts';
import { LogBudget } from '../observe/log-budget.ts';
import { createLogger, type Logger } from '../observe/logger.ts';
import { WorkerMetrics } from '../observe/metrics.ts';
import { serveObservability } from '../observe/server.ts';
import type { ResultRecord } from '../results/result.ts';
import type { TaskDefinition } from '../task.ts';
import { retryDelayMs } from './backoff.ts';
import { type Execution, execute, judgeFailure, type Outcome, type Verdict } from './execute.ts';
import { isPermanent } from './permanent.ts';
import { parseRate, TokenBucket } from './rate-limit.ts';

export const VERSION = '0.1.0';

/**
 * After the grace period, how long stop() may still take to hand back the calls it abandons and to
 * close: a reachable broker needs milliseconds, so a broker that has not answered by then is not.
 */
const HANDBACK_MS = 5000;

/** How often start() says it is still waiting for the broker: as often as the connection retries. */
const BROKER_WAIT_WARNING_MS = 2000;

/** The longest task name a log line or dead-letter detail quotes (an unknown name is anyone's input). */
const MAX_QUOTED_NAME = 200;

export interface WorkerOptions {
  /** @defaultValue the app's defaultQueue */
  queue?: string;
  /** Calls run at once. @defaultValue 16 */
  concurrency?: number;
  /** Calls fetched ahead of free slots, so a slot never waits on a round trip. @defaultValue concurrency */
  prefetch?: number;
  /** @defaultValue 30_000 (see ConsumerOptions.visibilityTimeoutMs) */
  visibilityTimeout?: number;
  /** @defaultValue 5 */
  maxDeliveries?: number;
  /** Kafka: run calls sharing a partition key one at a time, in order (ConsumerOptions.ordered). */
  ordered?: boolean;
  /** How long stop() waits for running calls before aborting them, ms. @defaultValue 30_000 */
  shutdownGrace?: number;
  /**
   * Serve /metrics, /healthz and /readyz on this port (0: any free port; see metricsAddress). Unset: no
   * server. The CLI differs: `taskfleet worker` serves on 9090 unless told, and its `--metrics-port 0`
   * turns the server off.
   */
  metricsPort?: number;
  /** @defaultValue 2000 */
  heartbeatInterval?: number;
  logger?: Logger;
  /**
   * The host name heartbeats report; in Kubernetes, the pod's name, which is how the operator finds
   * which pods are busy before scaling down (`taskfleet worker` takes it from TASKFLEET_POD_NAME, which
   * the operator sets from the downward API: a pod's own hostname is its name cut to 63 characters).
   * @defaultValue os.hostname()
   */
  hostname?: string;
  /** @defaultValue hostname-pid-random */
  id?: string;
}

interface Running {
  delivery: Delivery;
  envelope: Envelope;
  definition: TaskDefinition;
  execution: Execution;
  startedAt: number;
  /** The handler has settled: only recording its outcome is left, which shutdown must not cut short. */
  settled: boolean;
  /** Resolves when the call is over here: its outcome recorded, or the call handed back. */
  over: Promise<void>;
}

interface RateGate {
  intervalMs: number;
  /** Local bucket, or the shared limiter in Redis. */
  take: () => Promise<number>;
  queue: Delivery[];
  timer: NodeJS.Timeout | undefined;
  draining: boolean;
}

/**
 * Consumes one queue and runs its calls: concurrency, prefetch, retries, rate limits, time limits,
 * revocation, heartbeats, metrics, graceful shutdown. Outcomes are recorded before the delivery is
 * acknowledged, so a worker killed at any moment loses nothing.
 */
export class Worker {
  readonly id: string;
  readonly queue: string;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly metrics = new WorkerMetrics();
  readonly log: Logger;
  readonly #app: Taskfleet;
  /** Chains, chords, links: what follows a call's outcome (canvas/runtime.ts). */
  readonly #canvas: CanvasRuntime;
  readonly #options: WorkerOptions;
  #consumer: Consumer | undefined;
  readonly #waiting: Delivery[] = [];
  readonly #running = new Map<string, Running>();
  readonly #gates = new Map<string, RateGate>();
  readonly #revoked = new Set<string>();
  readonly #processed: Record<string, number> = {};
  readonly #fetching = new AbortController();
  #roomFreed: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** The last report request answered, and when (see Control.report). */
  #report: { id: string; at: number } | undefined;
  readonly #forced = Promise.withResolvers<void>();
  #server: Server | undefined;
  #subscriber: Redis | undefined;
  #timers: NodeJS.Timeout[] = [];
  #startedAt = 0;
  /** Dead letters are logged a few per reason and minute; the rest are counted (a flood must not flood the log). */
  readonly #deadLetterLog = new LogBudget();

  constructor(app: Taskfleet, options: WorkerOptions = {}) {
    this.#app = app;
    this.#options = options;
    this.queue = options.queue ?? app.defaultQueue;
    this.concurrency = options.concurrency ?? 16;
    this.prefetch = options.prefetch ?? this.concurrency;
    if (!(Number.isInteger(this.concurrency) && this.concurrency >= 1)) {
      throw new ConfigError(`concurrency must be an integer ≥ 1, not ${options.concurrency}`);
    }
    if (!(Number.isInteger(this.prefetch) && this.prefetch >= 0)) {
      throw new ConfigError(`prefetch must be an integer ≥ 0, not ${options.prefetch}`);
    }
    this.id = options.id ?? `${options.hostname ?? hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = (options.logger ?? createLogger()).child({ queue: this.queue, worker: this.id });
    this.#canvas = new CanvasRuntime(app, this.log);
  }

  /** Ready: consuming with a healthy broker connection. */
  get ready(): boolean {
    return this.#consumer?.healthy === true && !this.#stopping;
  }

  /** Where /metrics is served, once started with metricsPort. */
  get metricsAddress(): string | undefined {
    const address = this.#server?.address();
    return address && typeof address === 'object' ? `http://127.0.0.1:${address.port}` : undefined;
  }

  /**
   * Connects and starts consuming (an app without tasks too: `taskfleet worker` refuses one, see
   * assertHasTasks; from code, a worker with no tasks dead-letters what it reads). While the broker cannot be reached (down, or a wrong URL) it keeps
   * trying, as a pod started before its Redis must: /healthz answers, /readyz says not ready, and a
   * warning naming the broker is logged every few seconds until it answers.
   */
  async start(): Promise<void> {
    this.#startedAt = Date.now();
    if (this.#options.metricsPort !== undefined) {
      const port = this.#options.metricsPort;
      this.#server = await serveObservability(port, this.metrics.registry, {
        live: () => true,
        ready: () => this.ready,
      }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EADDRINUSE') throw error;
        throw new ConfigError(
          `the metrics port ${port} is in use (another worker on this machine?): give each worker its own with --metrics-port (TASKFLEET_METRICS_PORT; metricsPort in code), or --metrics-port 0 to serve no metrics`,
          { cause: error },
        );
      });
    }
    const broker = this.#app.broker;
    const warnings = await this.#firstContact(broker.warnings());
    if (warnings === undefined) return; // stopped while waiting for the broker
    for (const warning of warnings) this.log.warn(warning);
    if (!this.#app.hasBackend)
      this.log.warn('no result backend configured: results are not stored, revoke and inspect are off');
    this.metrics.info.set({ queue: this.queue, version: VERSION, concurrency: String(this.concurrency) }, 1);
    if (this.#app.hasBackend) await this.#listenForRevocations();
    this.#consumer = await broker.consume(this.queue, {
      consumer: this.id,
      ...(this.#options.visibilityTimeout !== undefined
        ? { visibilityTimeoutMs: this.#options.visibilityTimeout }
        : {}),
      ...(this.#options.maxDeliveries !== undefined ? { maxDeliveries: this.#options.maxDeliveries } : {}),
      ...(this.#options.ordered ? { ordered: true } : {}),
    });
    if (this.#app.hasBackend) {
      const every = this.#options.heartbeatInterval ?? 2000;
      const beat = () => void this.#beat(every * 3).catch((error) => this.log.warn('heartbeat failed', { error }));
      beat();
      this.#timers.push(setInterval(beat, every));
    }
    this.#loop = this.#fetchLoop(this.#consumer);
    this.log.info('worker started', {
      concurrency: this.concurrency,
      prefetch: this.prefetch,
      tasks: [...this.#app.tasks.keys()],
      metrics: this.metricsAddress,
    });
  }

  /**
   * The first call to the broker: it waits for as long as the broker is unreachable, so say so meanwhile.
   * Undefined if the worker is stopped first.
   */
  async #firstContact<T>(call: Promise<T>): Promise<T | undefined> {
    const since = Date.now();
    const timer = setInterval(() => {
      this.log.warn('cannot reach the broker yet; still trying. Check the broker URL and that it is running', {
        broker: redact(this.#app.brokerUrl),
        waitedMs: Date.now() - since,
      });
    }, BROKER_WAIT_WARNING_MS);
    const signal = this.#fetching.signal;
    const stopped = Promise.withResolvers<undefined>();
    const onStop = () => stopped.resolve(undefined);
    signal.addEventListener('abort', onStop, { once: true });
    try {
      return await Promise.race([call, stopped.promise]);
    } finally {
      clearInterval(timer);
      signal.removeEventListener('abort', onStop);
    }
  }

  async #fetchLoop(consumer: Consumer): Promise<void> {
    const signal = this.#fetching.signal;
    // One listener for the loop's whole life: one added per wait would pile up on the signal, each
    // making the next addEventListener slower (it scans them all), for as long as the worker runs.
    signal.addEventListener('abort', () => this.#roomFreed?.(), { once: true });
    while (!signal.aborted) {
      const room = this.concurrency + this.prefetch - this.#running.size - this.#waiting.length;
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          this.#roomFreed = resolve;
        });
        continue;
      }
      const deliveries = await consumer.receive(room, signal);
      if (signal.aborted) {
        await consumer.release(deliveries);
        break;
      }
      if (deliveries.length === 0 && !consumer.healthy) {
        // receive() returns nothing only when stopped or when its consumer was closed (the app closed
        // under a running worker): asking again would return at once, forever, and starve the process.
        this.log.error('the consumer was closed while the worker ran: it consumes no more; stop and restart it');
        break;
      }
      for (const delivery of deliveries) this.#accept(delivery);
      this.#pump();
    }
  }

  /** Sorts a new delivery: dead-letter, skip, hold for a rate limit, or line up to run. */
  #accept(delivery: Delivery): void {
    const { envelope, problem } = delivery;
    if (problem || !envelope) {
      const reason = problem?.reason ?? 'malformed';
      this.#settleSafely(delivery, () => this.#deadLetter(delivery, reason, problem?.message ?? 'invalid message'));
      return;
    }
    const definition = this.#app.tasks.get(envelope.task);
    if (!definition) {
      const detail = `no task named ${quoted(envelope.task)} is registered on this worker (it runs: ${[...this.#app.tasks.keys()].join(', ') || 'none'})`;
      this.#settleSafely(delivery, () => this.#deadLetter(delivery, 'unknown-task', detail));
      return;
    }
    if (this.#skipIfStale(delivery, envelope, definition)) return;
    if (this.#early(delivery, envelope)) {
      // On its lane before its eta (written there directly, or by a producer whose clock runs behind):
      // back to the delayed set until then. Judged by the broker's clock (enqueuedAt), so a worker whose
      // clock runs behind the broker's never sends back a call the broker has found due.
      const at = envelope.eta as number;
      this.#settleSafely(delivery, () =>
        (this.#consumer as Consumer).settle(delivery, { kind: 'requeue', envelope, at }),
      );
      this.log.debug('call received before its eta: put back until then', { taskId: envelope.id, eta: at });
      return;
    }
    if (definition.options.rateLimit !== undefined) {
      this.#hold(definition, delivery);
      return;
    }
    this.#waiting.push(delivery);
  }

  /** Starts waiting calls while slots are free. */
  #pump(): void {
    while (this.#running.size < this.concurrency && this.#waiting.length > 0 && !this.#stopping) {
      const delivery = this.#waiting.shift() as Delivery;
      const envelope = delivery.envelope as Envelope;
      // A call may have waited here a while, behind busy slots or a rate limit: it may have been
      // revoked or have expired since it was received, and neither may run.
      if (this.#skipIfStale(delivery, envelope, this.#app.tasks.get(envelope.task) as TaskDefinition)) continue;
      void this.#run(delivery);
    }
  }

  /** Records a revoked or expired call as REVOKED and acknowledges it instead of running it. */
  #skipIfStale(delivery: Delivery, envelope: Envelope, definition: TaskDefinition): boolean {
    const why = this.#revoked.has(envelope.id)
      ? 'revoked'
      : envelope.expires !== undefined && Date.now() > envelope.expires
        ? 'expired'
        : undefined;
    if (why === undefined) return false;
    this.#settleSafely(delivery, () => this.#skip(delivery, envelope, definition, why));
    return true;
  }

  /** Whether a call arrived before its eta, by the broker's clock and by this worker's. */
  #early(delivery: Delivery, envelope: Envelope): boolean {
    return envelope.eta !== undefined && envelope.eta > delivery.enqueuedAt && envelope.eta > Date.now();
  }

  #freeRoom(): void {
    this.#pump();
    const resolve = this.#roomFreed;
    this.#roomFreed = undefined;
    resolve?.();
  }

  async #run(delivery: Delivery): Promise<void> {
    const envelope = delivery.envelope as Envelope;
    const definition = this.#app.tasks.get(envelope.task) as TaskDefinition;
    const labels = { queue: this.queue, task: envelope.task };
    const startedAt = Date.now();
    const log = this.log.child({ task: envelope.task, taskId: envelope.id, attempt: envelope.attempt });
    const execution = execute(definition, envelope, log);
    const over = Promise.withResolvers<void>();
    const running: Running = {
      delivery,
      envelope,
      definition,
      execution,
      startedAt,
      settled: false,
      over: over.promise,
    };
    this.#running.set(delivery.receipt, running);
    this.metrics.inFlight.inc({ queue: this.queue });
    this.metrics.wait.observe(labels, Math.max(0, startedAt - Math.max(delivery.enqueuedAt, envelope.eta ?? 0)) / 1000);
    const started =
      definition.options.trackStarted && !definition.options.ignoreResult
        ? this.#store(definition, { ...this.#record(envelope, 'STARTED'), startedAt }).catch(() => {})
        : undefined;
    const outcome = await execution.outcome;
    running.settled = true;
    this.metrics.duration.observe(labels, (Date.now() - startedAt) / 1000);
    if (started) await started;
    if (this.#running.get(delivery.receipt) !== running) {
      // Abandoned at shutdown: already handed back for redelivery, so record nothing.
      this.metrics.inFlight.dec({ queue: this.queue });
      over.resolve();
      return;
    }
    try {
      await this.#finish(delivery, envelope, definition, outcome, startedAt, log);
    } catch (error) {
      await this.#unfinished(delivery, envelope, definition, error, startedAt, log);
    } finally {
      this.#running.delete(delivery.receipt);
      this.metrics.inFlight.dec({ queue: this.queue });
      this.#freeRoom();
      over.resolve();
    }
  }

  async #finish(
    delivery: Delivery,
    envelope: Envelope,
    definition: TaskDefinition,
    outcome: Outcome,
    startedAt: number,
    log: Logger,
  ): Promise<void> {
    const consumer = this.#consumer as Consumer;
    const finishedAt = Date.now();
    const tooLarge = outcome.ok ? this.#resultTooLarge(definition, envelope, outcome.value) : undefined;
    if (outcome.ok && !tooLarge) {
      if (CanvasRuntime.involved(envelope)) {
        await permanentAs('success', this.#canvas.succeeded(envelope, outcome.value as JsonValue));
      }
      await this.#store(definition, {
        ...this.#record(envelope, 'SUCCESS'),
        result: outcome.value as ResultRecord['result'],
        startedAt,
        finishedAt,
      });
      await consumer.settle(delivery, { kind: 'ack' });
      this.#count(envelope, 'success');
      log.debug('task succeeded', { ms: finishedAt - startedAt });
      return;
    }
    let verdict: Verdict = tooLarge
      ? { kind: 'fail', error: tooLarge }
      : judgeFailure(definition, envelope, (outcome as { error: unknown }).error);
    if (verdict.kind === 'retry') {
      const delayMs =
        verdict.delayMs ??
        retryDelayMs(
          {
            retryDelay: definition.options.retryDelay ?? 1000,
            retryBackoff: definition.options.retryBackoff ?? false,
            retryBackoffMax: definition.options.retryBackoffMax ?? 600_000,
            retryJitter: definition.options.retryJitter ?? true,
          },
          envelope.attempt,
        );
      const at = finishedAt + delayMs;
      // A retry parked past the horizon (a countdown in seconds taken for ms) fails instead.
      if (delayMs > this.#app.etaHorizon) {
        verdict = {
          kind: 'fail',
          error: new EtaBeyondHorizonError(envelope.task, at, finishedAt, this.#app.etaHorizon),
        };
      } else {
        const error = recordError(verdict.error);
        await this.#store(definition, {
          ...this.#record(envelope, 'RETRY'),
          error,
          startedAt,
          finishedAt,
          retryAt: at,
        });
        const next: Envelope = { ...envelope, attempt: envelope.attempt + 1, eta: at };
        await consumer.settle(delivery, { kind: 'requeue', envelope: next, at });
        this.#count(envelope, 'retry');
        this.metrics.retries.inc({ queue: this.queue, task: envelope.task });
        log.warn('task failed; retrying', { error, retryInMs: delayMs });
        return;
      }
    }
    const error = recordError(verdict.error);
    const state = verdict.kind === 'revoked' ? 'REVOKED' : 'FAILURE';
    await this.#store(definition, { ...this.#record(envelope, state), error, startedAt, finishedAt });
    if (CanvasRuntime.involved(envelope)) await permanentAs('failure', this.#canvas.failed(envelope, error, state));
    await consumer.settle(delivery, { kind: 'ack' });
    this.#count(envelope, verdict.kind === 'revoked' ? 'revoked' : 'failure');
    log.warn(verdict.kind === 'revoked' ? 'task terminated' : 'task failed', { error });
  }

  /**
   * The outcome could not be recorded. An error no retry fixes (a next step over the size limit, a
   * message the broker refuses, a misconfiguration) ends the call at once: FAILURE with the error, its
   * workflow told; and when even that cannot be passed on, a dead letter saying why. Any other failure
   * (the broker or backend away) hands the call back, counted, so one whose outcome can never be
   * recorded ends as poison after maxDeliveries instead of running again and again.
   */
  async #unfinished(
    delivery: Delivery,
    envelope: Envelope,
    definition: TaskDefinition,
    error: unknown,
    startedAt: number,
    log: Logger,
  ): Promise<void> {
    const consumer = this.#consumer as Consumer;
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
      await this.#store(definition, {
        ...this.#record(envelope, 'FAILURE'),
        error: recorded,
        startedAt,
        finishedAt: Date.now(),
      });
      if (CanvasRuntime.involved(envelope))
        await permanentAs('failure', this.#canvas.failed(envelope, recorded, 'FAILURE'));
      await consumer.settle(delivery, { kind: 'ack' });
      this.#count(envelope, 'failure');
      log.error('task failed: its outcome cannot be recorded as it is', { error: recorded });
    } catch (again) {
      if (!isPermanent(again)) return handBack(again);
      await unrecordable(again);
    }
  }

  /** Whether a result is too large to store or pass on: the error to fail the call with, if so. */
  #resultTooLarge(definition: TaskDefinition, envelope: Envelope, value: unknown): ResultTooLargeError | undefined {
    const stored = !definition.options.ignoreResult && this.#app.hasBackend;
    if (!stored && !CanvasRuntime.involved(envelope)) return undefined; // it goes nowhere
    const max = this.#app.maxResultBytes;
    const text = JSON.stringify(value ?? null);
    // Buffer.byteLength is exact but costs a pass; a string of n UTF-16 units is at most 3n bytes.
    if (text.length * 3 <= max) return undefined;
    const bytes = Buffer.byteLength(text);
    return bytes > max ? new ResultTooLargeError(envelope.task, bytes, max) : undefined;
  }

  #count(envelope: Envelope, outcome: 'success' | 'failure' | 'retry' | 'revoked' | 'expired'): void {
    this.metrics.tasks.inc({ queue: this.queue, task: envelope.task, outcome });
    this.#processed[outcome] = (this.#processed[outcome] ?? 0) + 1;
  }

  #record(envelope: Envelope, state: ResultRecord['state']): ResultRecord {
    return {
      id: envelope.id,
      task: envelope.task,
      state,
      attempts: envelope.attempt,
      queue: envelope.queue,
      worker: this.id,
      ...(envelope.parentId !== undefined ? { parentId: envelope.parentId } : {}),
      rootId: envelope.rootId,
    };
  }

  #store(definition: TaskDefinition, record: ResultRecord): Promise<void> {
    if (definition.options.ignoreResult || !this.#app.hasBackend) return Promise.resolve();
    return this.#app.backend.store(record, definition.options.resultExpires ?? this.#app.resultExpires);
  }

  async #skip(delivery: Delivery, envelope: Envelope, definition: TaskDefinition, why: 'revoked' | 'expired') {
    const error = recordError(
      new TaskRevokedError(envelope.id, why === 'expired' ? 'expired before it started' : 'revoked'),
    );
    await this.#store(definition, { ...this.#record(envelope, 'REVOKED'), error, finishedAt: Date.now() });
    try {
      if (CanvasRuntime.involved(envelope)) await this.#canvas.failed(envelope, error, 'REVOKED');
    } catch (failure) {
      if (!isPermanent(failure)) throw failure;
      // REVOKED is recorded; its chord or chain cannot be told, and never will be: say so where it shows.
      const detail = `it was ${why} and not run, but its workflow could not be told: ${messageOf(failure)}`;
      return this.#deadLetter(delivery, 'unrecordable', detail, { store: false, tell: false });
    }
    await this.#consumer?.settle(delivery, { kind: 'ack' });
    this.#count(envelope, why);
    this.log.info(`task ${why}: not run`, { task: envelope.task, taskId: envelope.id });
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
    const envelope = delivery.envelope;
    let letter = detail;
    if (envelope) {
      // Whoever waits on this call learns it failed, and why, instead of waiting forever; requeueing
      // the dead letter (taskfleet dlq requeue) runs it again and overwrites this.
      const error = { name: 'DeadLettered', code: reason, message: `dead-lettered (${reason}): ${detail}` };
      try {
        if (store && this.#app.hasBackend) {
          await this.#app.backend.store(
            { ...this.#record(envelope, 'FAILURE'), error, finishedAt: Date.now() },
            this.#app.resultExpires,
          );
        }
        // A dead letter fails for good: its chain, chord and errbacks must learn it too, or wait forever.
        if (tell && CanvasRuntime.involved(envelope))
          await permanentAs('failure', this.#canvas.failed(envelope, error, 'FAILURE'));
      } catch (failure) {
        if (!isPermanent(failure) && reason !== 'poison') throw failure;
        letter = `${detail}; its failure could not be recorded or its workflow told: ${messageOf(failure)}`;
      }
    }
    await (this.#consumer as Consumer).settle(delivery, { kind: 'dead-letter', reason, detail: letter });
    this.metrics.deadLetters.inc({ queue: this.queue, reason });
    const { write, suppressed } = this.#deadLetterLog.take(reason);
    if (suppressed > 0) this.#logSuppressed(reason, suppressed);
    if (write) {
      this.log.error('message dead-lettered', {
        reason,
        detail: letter,
        taskId: delivery.envelope?.id,
        receipt: delivery.receipt,
      });
    }
  }

  #logSuppressed(reason: string, count: number): void {
    this.log.error('more messages dead-lettered than logged', {
      reason,
      notLogged: count,
      hint: 'taskfleet_dead_letters_total counts them all; taskfleet dlq list shows them',
    });
  }

  /** A settlement outside #run: its failure must not crash the worker, nor leave the delivery held forever. */
  #settleSafely(delivery: Delivery, settle: () => Promise<void>): void {
    settle().catch((error) => this.#dropped(delivery, error));
  }

  /** Gives a delivery that could not be settled up: it is redelivered, counted, after the visibility timeout. */
  #dropped(delivery: Delivery, error: unknown): void {
    this.log.error('could not settle a delivery: it is redelivered after the visibility timeout', {
      error,
      receipt: delivery.receipt,
      deliveries: delivery.deliveries,
    });
    this.#consumer?.drop(delivery);
  }

  /**
   * Rate-limited calls wait here, outside the slots, so they never block other tasks. A gate holds at
   * most `prefetch` calls; more are put back on the queue for when the limit will let them run.
   */
  #hold(definition: TaskDefinition, delivery: Delivery): void {
    let gate = this.#gates.get(definition.name);
    if (!gate) {
      const intervalMs = parseRate(definition.options.rateLimit as string | number);
      const take =
        definition.options.rateLimitScope === 'global' && this.#app.hasBackend
          ? this.#globalLimiter(definition.name, intervalMs)
          : (() => {
              const bucket = new TokenBucket(intervalMs);
              return async () => bucket.take(Date.now());
            })();
      gate = { intervalMs, take, queue: [], timer: undefined, draining: false };
      this.#gates.set(definition.name, gate);
    }
    if (gate.queue.length >= Math.max(1, this.prefetch)) {
      const envelope = delivery.envelope as Envelope;
      const at = Date.now() + (gate.queue.length + 1) * gate.intervalMs;
      this.#settleSafely(delivery, () =>
        (this.#consumer as Consumer).settle(delivery, { kind: 'requeue', envelope, at }),
      );
      return;
    }
    gate.queue.push(delivery);
    void this.#drain(gate);
  }

  async #drain(gate: RateGate): Promise<void> {
    if (gate.draining || gate.timer) return;
    gate.draining = true;
    try {
      while (gate.queue.length > 0 && !this.#stopping) {
        const waitMs = await gate.take();
        if (waitMs > 0) {
          gate.timer = setTimeout(() => {
            gate.timer = undefined;
            void this.#drain(gate);
          }, waitMs);
          return;
        }
        this.#waiting.push(gate.queue.shift() as Delivery);
        this.#pump();
      }
    } catch (error) {
      this.log.warn('rate limiter unavailable; trying again', { error });
      gate.timer = setTimeout(() => {
        gate.timer = undefined;
        void this.#drain(gate);
      }, 500);
    } finally {
      gate.draining = false;
    }
  }

  #globalLimiter(task: string, intervalMs: number): () => Promise<number> {
    const redis = this.#app.control.redis as Redis & Scripts;
    const key = appKeys(this.#app.prefix).rateLimit(task);
    return async () => Number(await redis.rateLimit(key, intervalMs));
  }

  /** Subscribes to control messages, then loads the revoked set: a revoke in between is seen by one or the other. */
  async #listenForRevocations(): Promise<void> {
    const control = this.#app.control;
    this.#subscriber = control.redis.duplicate({ enableAutoPipelining: false });
    this.#subscriber.on('message', (_channel: string, text: string) => {
      try {
        this.#onControl(JSON.parse(text) as ControlMessage);
      } catch (error) {
        this.log.warn('ignored a bad control message', { error });
      }
    });
    // After a reconnect, messages sent meanwhile were missed: reload the set.
    this.#subscriber.on('ready', () => void this.#loadRevoked());
    await this.#subscriber.subscribe(control.channel);
    await this.#loadRevoked();
  }

  async #loadRevoked(): Promise<void> {
    try {
      for (const id of await this.#app.control.revoked()) this.#revoked.add(id);
    } catch (error) {
      this.log.warn('could not load revoked tasks', { error });
    }
  }

  #onControl(message: ControlMessage): void {
    if (message.type === 'report') {
      // The operator ranks pods by their calls before a scale-down: it wants them now, not as of the
      // last heartbeat. Only while heartbeats run (consuming, not stopping: a worker that left stays gone).
      if (message.queue !== this.queue || !this.#consumer || this.#stopping) return;
      const ttlMs = (this.#options.heartbeatInterval ?? 2000) * 3;
      void this.#beat(ttlMs, message.id).catch((error) => this.log.warn('heartbeat failed', { error }));
      return;
    }
    if (message.type !== 'revoke') return;
    for (const id of message.ids) {
      this.#revoked.add(id);
      if (!message.terminate) continue;
      for (const running of this.#running.values()) {
        if (running.envelope.id === id) running.execution.abort(new TaskRevokedError(id, 'terminated'));
      }
    }
  }

  async #beat(ttlMs: number, answering?: string): Promise<void> {
    const at = Date.now();
    if (answering) this.#report = { id: answering, at };
    const heartbeat: WorkerHeartbeat = {
      id: this.id,
      hostname: this.#options.hostname ?? hostname(),
      pid: process.pid,
      queue: this.queue,
      concurrency: this.concurrency,
      startedAt: this.#startedAt,
      at,
      version: VERSION,
      active: [...this.#running.values()].map((r) => ({
        id: r.envelope.id,
        task: r.envelope.task,
        startedAt: r.startedAt,
        attempt: r.envelope.attempt,
      })),
      reserved: this.#waiting.length + [...this.#gates.values()].reduce((n, g) => n + g.queue.length, 0),
      processed: { ...this.#processed },
      ...(this.#report ? { report: this.#report.id, reportAt: this.#report.at } : {}),
    };
    await this.#app.control.beat(heartbeat, ttlMs, answering ? { answering } : {});
  }

  /** Calls running now (for tests and inspection). */
  get active(): number {
    return this.#running.size;
  }

  /**
   * Graceful shutdown: stop fetching, hand back calls not yet started at once, let running calls finish
   * for up to `graceMs`, then abort the rest and hand them back too. Nothing is acknowledged that did
   * not finish, so nothing is lost.
   */
  stop({ graceMs = this.#options.shutdownGrace ?? 30_000 }: { graceMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#shutdown(graceMs);
    return this.#stopping;
  }

  /** Ends the grace period now (a second SIGTERM or Ctrl-C); does nothing before stop(). */
  forceStop(): void {
    // Remembered, not only acted on: it may come while stop() is still handing back unstarted calls.
    if (this.#stopping) this.#forced.resolve();
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.log.info('stopping: no new calls; handing back those not started', {
      running: this.#running.size,
      waiting: this.#waiting.length,
    });
    // With the broker unreachable, a step that talks to it would never finish: each waits until a
    // deadline at most. A call not handed back stays pending in the broker and is redelivered after
    // the visibility timeout, so giving up loses nothing; it only makes that call later.
    const graceEnds = Date.now() + graceMs;
    this.#fetching.abort();
    await this.#until(graceEnds, this.#loop, { step: 'stop fetching' });
    const consumer = this.#consumer;
    const unstarted = this.#waiting.splice(0);
    for (const gate of this.#gates.values()) {
      clearTimeout(gate.timer);
      unstarted.push(...gate.queue.splice(0));
    }
    await this.#until(graceEnds, consumer?.release(unstarted), { step: 'hand back the calls not started' });
    await this.#until(graceEnds, Promise.all([...this.#running.values()].map((r) => r.over)), {
      forceable: true,
    });
    // Only handlers still running are abandoned. One that has settled is recording its outcome (result,
    // then acknowledgement): handing it back as well would run it twice.
    const abandoned = [...this.#running.values()].filter((r) => !r.settled);
    const handbackEnds = Date.now() + HANDBACK_MS;
    if (abandoned.length > 0) {
      this.log.warn('grace period over: aborting running calls and handing them back', { count: abandoned.length });
      for (const r of abandoned) this.#running.delete(r.delivery.receipt);
      // Counted: they ran, as a call whose worker died did. A call that outlasts every grace period (or
      // hangs its worker's shutdown) ends as poison after maxDeliveries, not handed round forever.
      await this.#until(
        handbackEnds,
        consumer?.release(
          abandoned.map((r) => r.delivery),
          { counted: true },
        ),
        {
          step: 'hand back the running calls',
        },
      );
      for (const r of abandoned) r.execution.abort(new TaskRevokedError(r.envelope.id, 'abandoned at worker shutdown'));
    }
    await this.#until(handbackEnds, Promise.all([...this.#running.values()].map((r) => r.over)), {
      step: 'record the outcome of finished calls',
    });
    for (const timer of this.#timers) clearInterval(timer);
    for (const [reason, count] of this.#deadLetterLog.drain()) this.#logSuppressed(reason, count);
    await this.#until(handbackEnds, consumer?.close(), { step: 'close the consumer' });
    // Heartbeats begin once consuming does: a worker stopped before that is not on the list to leave.
    if (this.#app.hasBackend && consumer)
      await this.#until(handbackEnds, this.#app.control.leave(this.id), { step: 'leave the list of live workers' });
    this.#subscriber?.disconnect();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.log.info('worker stopped');
  }

  /**
   * Waits for one step of shutdown until `deadline` at most (or forceStop(), if `forceable`). A step that
   * fails or gives up is logged with `step`, what it was doing; shutdown goes on either way.
   */
  async #until(
    deadline: number,
    work: Promise<unknown> | undefined,
    { step, forceable = false }: { step?: string; forceable?: boolean },
  ): Promise<void> {
    if (!work) return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), Math.max(0, deadline - Date.now()));
    });
    const outcome = await Promise.race([
      work.then(
        () => 'done' as const,
        (error: unknown) => {
          this.log.error(`stopping: could not ${step}`, { error });
          return 'failed' as const;
        },
      ),
      expired,
      ...(forceable ? [this.#forced.promise.then(() => 'forced' as const)] : []),
    ]);
    clearTimeout(timer);
    if (outcome === 'expired' && step) {
      this.log.error(`stopping: could not ${step} in time (is the broker reachable?); going on without`);
    }
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

/** A task name as a log line or a dead letter quotes it: JSON (control characters escaped), and not too long. */
function quoted(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME ? `${name.slice(0, MAX_QUOTED_NAME)}…` : name);
}

/**
 * Refuses an app with no tasks: a worker for it would dead-letter every call on its queue as
 * unknown-task (and record each FAILURE). `taskfleet worker` checks before it connects.
 */
export function assertHasTasks(app: Taskfleet, queue: string): void {
  if (app.tasks.size > 0) return;
  throw new ConfigError(
    `the app registers no tasks, so this worker would dead-letter every call on queue ${JSON.stringify(queue)} as unknown-task: define them with app.task('name', handler) in the tasks module (or in modules it imports) before the worker starts`,
  );
}
