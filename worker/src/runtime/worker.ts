import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { Taskfleet } from '../app.ts';
import type { Consumer } from '../brokers/broker.ts';
import { redact } from '../brokers/redact.ts';
import { CanvasRuntime } from '../canvas/runtime.ts';
import { ConfigError, TaskRevokedError } from '../errors.ts';
import type { HistoryOptions } from '../history/entry.ts';
import { createLogger, type Logger } from '../observe/logger.ts';
import { WorkerMetrics } from '../observe/metrics.ts';
import { serveObservability } from '../observe/server.ts';
import { type Clock, systemClock, type Timer } from './clock.ts';
import { FetchLoop } from './fetch-loop.ts';
import { Outcomes } from './outcomes.ts';
import { RateGates } from './rate-gates.ts';
import { RemoteControl } from './remote-control.ts';
import { Slots } from './slots.ts';

export const VERSION = '0.1.0';

/**
 * After the grace period, how long stop() may still take to hand back the calls it abandons and to
 * close: a reachable broker needs milliseconds, so a broker that has not answered by then is not.
 */
const HANDBACK_MS = 5000;

/** How often start() says it is still waiting for the broker: as often as the connection retries. */
const BROKER_WAIT_WARNING_MS = 2000;

export interface WorkerOptions {
  /** @defaultValue the app's defaultQueue */
  queue?: string;
  /** Calls run at once. @defaultValue 16 */
  concurrency?: number;
  /**
   * Calls fetched ahead of free slots, so a slot never waits on a round trip. A call whose handler is
   * done records its outcome outside its slot; up to `concurrency + prefetch` of those take no room, so
   * a worker holds at most `2 × (concurrency + prefetch)` deliveries. @defaultValue concurrency
   */
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

/**
 * Consumes one queue and runs its calls: concurrency, prefetch, retries, rate limits, time limits,
 * revocation, heartbeats, metrics, graceful shutdown. Outcomes are recorded before the delivery is
 * acknowledged, so a worker killed at any moment loses nothing.
 *
 * It wires the pieces, each in its file: the fetch loop (pulling deliveries, with backpressure), the
 * slots (the calls running), the outcomes (recording them), the rate gates and remote control
 * (revocations, control messages, heartbeats); and it owns start and shutdown.
 */
export class Worker {
  readonly id: string;
  readonly queue: string;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly metrics = new WorkerMetrics();
  readonly log: Logger;
  readonly #app: Taskfleet;
  /** The task history's bounds (the app's), given to both the outcomes and the consumer; none when off. */
  readonly #history: HistoryOptions | undefined;
  readonly #options: WorkerOptions;
  readonly #hostname: string;
  readonly #clock: Clock = systemClock;
  readonly #outcomes: Outcomes;
  readonly #slots: Slots;
  readonly #gates: RateGates;
  readonly #fetch: FetchLoop;
  /** Revocations, control messages and heartbeats: with a result backend only, once started. */
  #remote: RemoteControl | undefined;
  #consumer: Consumer | undefined;
  readonly #fetching = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #forced = Promise.withResolvers<void>();
  #server: Server | undefined;
  #startedAt = 0;
  readonly #isStopping = () => this.#stopping !== undefined;

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
    this.#hostname = options.hostname ?? hostname();
    this.id = options.id ?? `${this.#hostname}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = (options.logger ?? createLogger()).child({ queue: this.queue, worker: this.id });
    const { queue, log, metrics } = this;
    const clock = this.#clock;
    const stopping = this.#isStopping;
    const history = app.historyOptions;
    this.#history = history;
    this.#outcomes = new Outcomes({
      app,
      ...(history ? { history } : {}),
      worker: this.id,
      queue,
      log,
      clock,
      metrics,
      // Chains, chords, links: what follows a call's outcome (canvas/runtime.ts).
      workflows: new CanvasRuntime(app, log),
      consumer: () => this.#consumer as Consumer,
    });
    const outcomes = this.#outcomes;
    this.#slots = new Slots({
      queue,
      tasks: app.tasks,
      clock,
      log,
      metrics,
      outcomes,
      freed: () => this.#fetch.freed(),
    });
    metrics.countInFlight(queue, () => this.#slots.busy);
    this.#gates = new RateGates({
      capacity: Math.max(1, this.prefetch),
      clock,
      log,
      get shared() {
        return app.hasBackend ? app.control : undefined;
      },
      admit: (delivery) => this.#fetch.admit(delivery),
      putBack: (delivery, at) => outcomes.putBack(delivery, at),
      stopping,
    });
    this.#fetch = new FetchLoop({
      concurrency: this.concurrency,
      prefetch: this.prefetch,
      tasks: app.tasks,
      clock,
      log,
      running: () => this.#slots.busy,
      recording: () => this.#slots.recording,
      revoked: (id) => this.#remote?.isRevoked(id) ?? false,
      stopping,
      run: (delivery) => void this.#slots.run(delivery),
      deadLetter: (delivery, reason, detail) => outcomes.deadLetter(delivery, reason, detail),
      skip: (delivery, envelope, definition, why) => outcomes.skip(delivery, envelope, definition, why),
      putBack: (delivery, at) => outcomes.putBack(delivery, at),
      hold: (definition, delivery) => this.#gates.hold(definition, delivery),
    });
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
    this.#startedAt = this.#clock.now();
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
    if (this.#app.hasBackend) {
      this.#remote = new RemoteControl({
        id: this.id,
        hostname: this.#hostname,
        queue: this.queue,
        concurrency: this.concurrency,
        version: VERSION,
        startedAt: this.#startedAt,
        clock: this.#clock,
        log: this.log,
        control: this.#app.control,
        status: () => ({
          active: this.#slots.active(),
          reserved: this.#fetch.waiting + this.#gates.held,
          processed: this.#outcomes.processed,
        }),
        terminate: (id) => this.#slots.terminate(id),
        stopping: this.#isStopping,
      });
      await this.#remote.listen();
    }
    this.#consumer = await broker.consume(this.queue, {
      consumer: this.id,
      ...(this.#options.visibilityTimeout !== undefined
        ? { visibilityTimeoutMs: this.#options.visibilityTimeout }
        : {}),
      ...(this.#options.maxDeliveries !== undefined ? { maxDeliveries: this.#options.maxDeliveries } : {}),
      ...(this.#options.ordered ? { ordered: true } : {}),
      ...(this.#app.backendIsBroker ? { storeResults: true } : {}),
      ...(this.#history ? { history: this.#history } : {}),
    });
    this.#remote?.startHeartbeats(this.#options.heartbeatInterval ?? 2000);
    this.#loop = this.#fetch.run(this.#consumer, this.#fetching.signal);
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
    const since = this.#clock.now();
    const timer = this.#clock.interval(BROKER_WAIT_WARNING_MS, () => {
      this.log.warn('cannot reach the broker yet; still trying. Check the broker URL and that it is running', {
        broker: redact(this.#app.brokerUrl),
        waitedMs: this.#clock.now() - since,
      });
    });
    const signal = this.#fetching.signal;
    const stopped = Promise.withResolvers<undefined>();
    const onStop = () => stopped.resolve(undefined);
    signal.addEventListener('abort', onStop, { once: true });
    try {
      return await Promise.race([call, stopped.promise]);
    } finally {
      timer.cancel();
      signal.removeEventListener('abort', onStop);
    }
  }

  /** Calls running now (for tests and inspection). */
  get active(): number {
    return this.#slots.size;
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
      running: this.#slots.size,
      waiting: this.#fetch.waiting,
    });
    // With the broker unreachable, a step that talks to it would never finish: each waits until a
    // deadline at most. A call not handed back stays pending in the broker and is redelivered after
    // the visibility timeout, so giving up loses nothing; it only makes that call later.
    const graceEnds = this.#clock.now() + graceMs;
    this.#fetching.abort();
    await this.#until(graceEnds, this.#loop, { step: 'stop fetching' });
    const consumer = this.#consumer;
    const unstarted = [...this.#fetch.takeWaiting(), ...this.#gates.close()];
    await this.#until(graceEnds, consumer?.release(unstarted), { step: 'hand back the calls not started' });
    await this.#until(graceEnds, this.#slots.over(), { forceable: true });
    // Only handlers still running are abandoned. One that has settled is recording its outcome (result,
    // then acknowledgement): handing it back as well would run it twice.
    const abandoned = this.#slots.abandon();
    const handbackEnds = this.#clock.now() + HANDBACK_MS;
    if (abandoned.length > 0) {
      this.log.warn('grace period over: aborting running calls and handing them back', { count: abandoned.length });
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
    await this.#until(handbackEnds, this.#slots.over(), { step: 'record the outcome of finished calls' });
    this.#remote?.stopHeartbeats();
    this.#outcomes.flushLog();
    await this.#until(handbackEnds, consumer?.close(), { step: 'close the consumer' });
    // Heartbeats begin once consuming does: a worker stopped before that is not on the list to leave.
    if (this.#remote && consumer)
      await this.#until(handbackEnds, this.#remote.leave(), { step: 'leave the list of live workers' });
    this.#remote?.close();
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
    let timer: Timer | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = this.#clock.timeout(Math.max(0, deadline - this.#clock.now()), () => resolve('expired'));
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
    timer?.cancel();
    if (outcome === 'expired' && step) {
      this.log.error(`stopping: could not ${step} in time (is the broker reachable?); going on without`);
    }
  }
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
