import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Taskfleet } from '../app.ts';
import type { Consumer, Delivery } from '../brokers/broker.ts';
import type { Redis, Scripts } from '../brokers/redis/connection.ts';
import { appKeys } from '../brokers/redis/keys.ts';
import type { ControlMessage, WorkerHeartbeat } from '../control.ts';
import { ConfigError, recordError, TaskRevokedError } from '../errors.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import { createLogger, type Logger } from '../observe/logger.ts';
import { WorkerMetrics } from '../observe/metrics.ts';
import { serveObservability } from '../observe/server.ts';
import type { ResultRecord } from '../results/result.ts';
import type { TaskDefinition } from '../task.ts';
import { retryDelayMs } from './backoff.ts';
import { type Execution, execute, judgeFailure, type Outcome } from './execute.ts';
import { parseRate, TokenBucket } from './rate-limit.ts';

export const VERSION = '0.1.0';

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
  /** How long stop() waits for running calls before aborting them, ms. @defaultValue 30_000 */
  shutdownGrace?: number;
  /** Serve /metrics, /healthz and /readyz on this port (0: any free port). Unset: no server. */
  metricsPort?: number;
  /** @defaultValue 2000 */
  heartbeatInterval?: number;
  logger?: Logger;
  /** @defaultValue hostname-pid-random */
  id?: string;
}

interface Running {
  delivery: Delivery;
  envelope: Envelope;
  definition: TaskDefinition;
  execution: Execution;
  startedAt: number;
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
  #forceStop: (() => void) | undefined;
  #server: Server | undefined;
  #subscriber: Redis | undefined;
  #timers: NodeJS.Timeout[] = [];
  #startedAt = 0;

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
    this.id = options.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = (options.logger ?? createLogger()).child({ queue: this.queue, worker: this.id });
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

  async start(): Promise<void> {
    this.#startedAt = Date.now();
    const broker = this.#app.broker;
    for (const warning of await broker.warnings()) this.log.warn(warning);
    if (!this.#app.hasBackend)
      this.log.warn('no result backend configured: results are not stored, revoke and inspect are off');
    if (this.#options.metricsPort !== undefined) {
      this.#server = await serveObservability(this.#options.metricsPort, this.metrics.registry, {
        live: () => true,
        ready: () => this.ready,
      });
    }
    this.metrics.info.set({ queue: this.queue, version: VERSION, concurrency: String(this.concurrency) }, 1);
    if (this.#app.hasBackend) await this.#listenForRevocations();
    this.#consumer = await broker.consume(this.queue, {
      consumer: this.id,
      ...(this.#options.visibilityTimeout !== undefined
        ? { visibilityTimeoutMs: this.#options.visibilityTimeout }
        : {}),
      ...(this.#options.maxDeliveries !== undefined ? { maxDeliveries: this.#options.maxDeliveries } : {}),
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

  async #fetchLoop(consumer: Consumer): Promise<void> {
    const signal = this.#fetching.signal;
    while (!signal.aborted) {
      const room = this.concurrency + this.prefetch - this.#running.size - this.#waiting.length;
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          this.#roomFreed = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        continue;
      }
      const deliveries = await consumer.receive(room, signal);
      if (signal.aborted) {
        await consumer.release(deliveries);
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
      const detail = `no task named ${JSON.stringify(envelope.task)} is registered on this worker (it runs: ${[...this.#app.tasks.keys()].join(', ') || 'none'})`;
      this.#settleSafely(delivery, () => this.#deadLetter(delivery, 'unknown-task', detail));
      return;
    }
    if (this.#revoked.has(envelope.id)) {
      this.#settleSafely(delivery, () => this.#skip(delivery, envelope, definition, 'revoked'));
      return;
    }
    if (envelope.expires !== undefined && Date.now() > envelope.expires) {
      this.#settleSafely(delivery, () => this.#skip(delivery, envelope, definition, 'expired'));
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
      void this.#run(delivery);
    }
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
    this.#running.set(delivery.receipt, { delivery, envelope, definition, execution, startedAt });
    this.metrics.inFlight.inc({ queue: this.queue });
    this.metrics.wait.observe(labels, Math.max(0, startedAt - Math.max(delivery.enqueuedAt, envelope.eta ?? 0)) / 1000);
    const started =
      definition.options.trackStarted && !definition.options.ignoreResult
        ? this.#store(definition, { ...this.#record(envelope, 'STARTED'), startedAt }).catch(() => {})
        : undefined;
    const outcome = await execution.outcome;
    this.metrics.duration.observe(labels, (Date.now() - startedAt) / 1000);
    await started;
    if (this.#running.get(delivery.receipt)?.execution !== execution) {
      // Abandoned at shutdown: already handed back for redelivery, so record nothing.
      this.metrics.inFlight.dec({ queue: this.queue });
      return;
    }
    try {
      await this.#finish(delivery, envelope, definition, outcome, startedAt, log);
    } catch (error) {
      // The outcome could not be recorded: hand the call back so it is not lost, and not acknowledged.
      log.error('could not record the outcome; releasing the call for redelivery', { error });
      await this.#consumer?.release([delivery]).catch(() => {});
    } finally {
      this.#running.delete(delivery.receipt);
      this.metrics.inFlight.dec({ queue: this.queue });
      this.#freeRoom();
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
    const count = (outcome: string) => {
      this.metrics.tasks.inc({ queue: this.queue, task: envelope.task, outcome });
      this.#processed[outcome] = (this.#processed[outcome] ?? 0) + 1;
    };
    if (outcome.ok) {
      if (envelope.chain && envelope.chain.length > 0)
        await this.#app.broker.publish([this.#nextInChain(envelope, outcome.value)]);
      await this.#store(definition, {
        ...this.#record(envelope, 'SUCCESS'),
        result: outcome.value as ResultRecord['result'],
        startedAt,
        finishedAt,
      });
      await consumer.settle(delivery, { kind: 'ack' });
      count('success');
      log.debug('task succeeded', { ms: finishedAt - startedAt });
      return;
    }
    const verdict = judgeFailure(definition, envelope, outcome.error);
    const error = recordError(verdict.error);
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
      await this.#store(definition, { ...this.#record(envelope, 'RETRY'), error, startedAt, finishedAt, retryAt: at });
      const next: Envelope = { ...envelope, attempt: envelope.attempt + 1, eta: at };
      await consumer.settle(delivery, { kind: 'requeue', envelope: next, at });
      count('retry');
      this.metrics.retries.inc({ queue: this.queue, task: envelope.task });
      log.warn('task failed; retrying', { error, retryInMs: delayMs });
      return;
    }
    const state = verdict.kind === 'revoked' ? 'REVOKED' : 'FAILURE';
    await this.#store(definition, { ...this.#record(envelope, state), error, startedAt, finishedAt });
    if (envelope.chain) await this.#failChain(envelope, definition, error);
    await consumer.settle(delivery, { kind: 'ack' });
    count(verdict.kind === 'revoked' ? 'revoked' : 'failure');
    log.warn(verdict.kind === 'revoked' ? 'task terminated' : 'task failed', { error });
  }

  /** The next step of a chain: it receives this step's result as its first argument. */
  #nextInChain(envelope: Envelope, value: unknown): Envelope {
    const [step, ...rest] = envelope.chain ?? [];
    if (!step) throw new Error('no next step');
    const definition = this.#app.tasks.get(step.task);
    return createEnvelope({
      task: step.task,
      args: [value, ...step.args],
      queue: step.queue ?? definition?.options.queue ?? envelope.queue,
      ...(step.id !== undefined ? { id: step.id } : {}),
      ...(step.options?.priority !== undefined ? { priority: step.options.priority } : {}),
      ...(step.options?.maxRetries !== undefined ? { maxRetries: step.options.maxRetries } : {}),
      parentId: envelope.id,
      rootId: envelope.rootId,
      ...(rest.length > 0 ? { chain: rest } : {}),
    });
  }

  /** A failed step fails the rest of its chain, so waiting on the chain's result ends with the error. */
  async #failChain(envelope: Envelope, definition: TaskDefinition, error: ResultRecord['error']): Promise<void> {
    if (!this.#app.hasBackend) return;
    const cause = {
      name: 'ChainFailed',
      message: `an earlier step (${envelope.task} ${envelope.id}) failed: ${error?.message}`,
    };
    for (const step of envelope.chain ?? []) {
      if (step.id === undefined) continue;
      await this.#store(definition, {
        id: step.id,
        task: step.task,
        state: 'FAILURE',
        error: cause,
        attempts: 0,
        queue: step.queue ?? envelope.queue,
        finishedAt: Date.now(),
        parentId: envelope.id,
        rootId: envelope.rootId,
      });
    }
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

  async #store(definition: TaskDefinition, record: ResultRecord): Promise<void> {
    if (definition.options.ignoreResult || !this.#app.hasBackend) return;
    await this.#app.backend.store(record, definition.options.resultExpires ?? this.#app.resultExpires);
  }

  async #skip(delivery: Delivery, envelope: Envelope, definition: TaskDefinition, why: 'revoked' | 'expired') {
    const error = recordError(
      new TaskRevokedError(envelope.id, why === 'expired' ? 'expired before it started' : 'revoked'),
    );
    await this.#store(definition, { ...this.#record(envelope, 'REVOKED'), error, finishedAt: Date.now() });
    await this.#consumer?.settle(delivery, { kind: 'ack' });
    this.metrics.tasks.inc({ queue: this.queue, task: envelope.task, outcome: why });
    this.log.info(`task ${why}: not run`, { task: envelope.task, taskId: envelope.id });
  }

  async #deadLetter(delivery: Delivery, reason: NonNullable<Delivery['problem']>['reason'], detail: string) {
    await this.#consumer?.settle(delivery, { kind: 'dead-letter', reason, detail });
    this.metrics.deadLetters.inc({ queue: this.queue, reason });
    this.log.error('message dead-lettered', {
      reason,
      detail,
      taskId: delivery.envelope?.id,
      receipt: delivery.receipt,
    });
  }

  /** A settlement outside #run: its failure must not crash the worker; the delivery is redelivered later. */
  #settleSafely(delivery: Delivery, settle: () => Promise<void>): void {
    settle().catch((error) => this.log.error('could not settle a delivery', { error, receipt: delivery.receipt }));
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
    if (message.type !== 'revoke') return;
    for (const id of message.ids) {
      this.#revoked.add(id);
      if (!message.terminate) continue;
      for (const running of this.#running.values()) {
        if (running.envelope.id === id) running.execution.abort(new TaskRevokedError(id, 'terminated'));
      }
    }
  }

  async #beat(ttlMs: number): Promise<void> {
    const heartbeat: WorkerHeartbeat = {
      id: this.id,
      hostname: hostname(),
      pid: process.pid,
      queue: this.queue,
      concurrency: this.concurrency,
      startedAt: this.#startedAt,
      at: Date.now(),
      version: VERSION,
      active: [...this.#running.values()].map((r) => ({
        id: r.envelope.id,
        task: r.envelope.task,
        startedAt: r.startedAt,
        attempt: r.envelope.attempt,
      })),
      reserved: this.#waiting.length + [...this.#gates.values()].reduce((n, g) => n + g.queue.length, 0),
      processed: { ...this.#processed },
    };
    await this.#app.control.beat(heartbeat, ttlMs);
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

  /** Ends the grace period now (a second SIGTERM or Ctrl-C). */
  forceStop(): void {
    this.#forceStop?.();
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.log.info('stopping: no new calls; handing back those not started', {
      running: this.#running.size,
      waiting: this.#waiting.length,
    });
    this.#fetching.abort();
    await this.#loop?.catch((error) => this.log.error('fetch loop failed', { error }));
    const consumer = this.#consumer;
    const unstarted = this.#waiting.splice(0);
    for (const gate of this.#gates.values()) {
      clearTimeout(gate.timer);
      unstarted.push(...gate.queue.splice(0));
    }
    await consumer?.release(unstarted).catch((error) => this.log.error('could not hand back calls', { error }));
    if (this.#running.size > 0) {
      const allDone = Promise.all([...this.#running.values()].map((r) => r.execution.outcome));
      const forced = new Promise<void>((resolve) => {
        this.#forceStop = resolve;
        const timer = setTimeout(resolve, graceMs);
        allDone.finally(() => clearTimeout(timer));
      });
      await Promise.race([allDone, forced]);
      // Let finished calls record their outcome before deciding what is still running.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const abandoned = [...this.#running.values()];
    if (abandoned.length > 0) {
      this.log.warn('grace period over: aborting running calls and handing them back', { count: abandoned.length });
      for (const r of abandoned) this.#running.delete(r.delivery.receipt);
      await consumer?.release(abandoned.map((r) => r.delivery)).catch(() => {});
      for (const r of abandoned) r.execution.abort(new TaskRevokedError(r.envelope.id, 'abandoned at worker shutdown'));
    }
    for (const timer of this.#timers) clearInterval(timer);
    await consumer?.close();
    if (this.#app.hasBackend) await this.#app.control.leave(this.id).catch(() => {});
    this.#subscriber?.disconnect();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.log.info('worker stopped');
  }
}
