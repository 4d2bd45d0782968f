import type { Broker, BrokerDefinition, BrokerSettings, DeadLetter } from './brokers/broker.ts';
import { DEFAULT_MAX_DEAD_LETTERS } from './brokers/dead-letter.ts';
import { RedisBroker } from './brokers/redis/broker.ts';
import { assertRedisUrl } from './brokers/redis/connection.ts';
import { requireBroker } from './brokers/registry.ts';
import { Control } from './control.ts';
import { type Endpoint, resolveEndpoint } from './endpoints.ts';
import { ConfigError, NoResultBackendError, TaskfleetError } from './errors.ts';
import { type HistoryOptions, resolveHistory } from './history/entry.ts';
import type { HistoryStore } from './history/store.ts';
import {
  createEnvelope,
  DEFAULT_ETA_HORIZON_MS,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_RESULT_BYTES,
  type Envelope,
  type Flow,
} from './message/envelope.ts';
import { Producer } from './producer.ts';
import { assertQueueName } from './queue-name.ts';
import { Task, TaskSignature } from './registered-task.ts';
import { AsyncResult } from './result.ts';
import { RedisResultBackend } from './results/redis-backend.ts';
import { DEFAULT_RESULT_TTL_MS, type ResultBackend } from './results/result.ts';
import { parseRate } from './runtime/rate-limit.ts';
import { addSchedule, parseSchedule, type Schedule, type ScheduleDefinition } from './schedule/schedule.ts';
import type { ApplyOptions, Handler, Signature, TaskDefinition, TaskOptions } from './task.ts';

export interface TaskfleetOptions {
  /**
   * Where tasks are sent: `redis://host:port/db` (or `rediss://`), or Kafka: `kafka://host:port,…`
   * (or `kafkas://` for TLS; credentials and options in docs/kafka.md). TASKFLEET_BROKER, when set,
   * wins over this, in a producer as in a worker (and the worker's --broker over both): see
   * docs/worker.md, "Which broker".
   * @defaultValue redis://127.0.0.1:6379
   */
  broker?: string;
  /**
   * Where results are kept: `redis://…`. Without one, results, `get()` and `inspect` are unavailable.
   * TASKFLEET_BACKEND, when set, wins over this (and the worker's --backend over both), as for `broker`.
   */
  backend?: string;
  /** @defaultValue TASKFLEET_QUEUE, else 'default' */
  defaultQueue?: string;
  /** Prefix of every Redis key Taskfleet writes. @defaultValue 'tf' */
  prefix?: string;
  /** How long results are kept, ms. @defaultValue one day */
  resultExpires?: number;
  /** @defaultValue 1 MiB */
  maxMessageBytes?: number;
  /**
   * A result (or chord member result) over this many bytes of JSON fails its call with
   * `ResultTooLargeError` (code `RESULT_TOO_LARGE`) instead of being stored or passed on.
   * @defaultValue TASKFLEET_MAX_RESULT_BYTES, else 1 MiB
   */
  maxResultBytes?: number;
  /**
   * Redis: about how many dead letters each queue keeps, oldest dropped first (`XADD … MAXLEN ~`).
   * @defaultValue TASKFLEET_MAX_DEAD_LETTERS, else 10,000
   */
  maxDeadLetters?: number;
  /**
   * The furthest ahead a countdown or ETA may be, ms: further is refused at enqueue with
   * `EtaBeyondHorizonError` (code `ETA_BEYOND_HORIZON`), and a retry delay further fails the call.
   * @defaultValue TASKFLEET_ETA_HORIZON, else one year
   */
  etaHorizon?: number;
  /**
   * How long a producer call — `delay()`, `applyAsync()`, `applyBulk()`, a workflow's `delay()`, an
   * AsyncResult's reads (`get()` up to its wait, `state()`, `info()`…), `forget()` and `revoke()` — waits
   * for the broker or result backend, ms. Then it rejects with `BrokerUnavailableError` (code
   * `BROKER_UNAVAILABLE`), which says whether anything may have been sent; a call given up before it
   * was sent is never sent later. The worker's own connections are not bounded: they wait for Redis.
   * @defaultValue TASKFLEET_BROKER_TIMEOUT, else 10,000 (10 s)
   */
  brokerTimeout?: number;
  /**
   * The task history workers keep on a Redis broker (docs/history.md): every call's outcome, with its
   * arguments and result or error. `true`, or bounds, turns it on (so does TASKFLEET_HISTORY=on);
   * `false` keeps it off whatever the environment says. Bounds not given come from
   * TASKFLEET_HISTORY_MAX_ENTRIES, TASKFLEET_HISTORY_MAX_AGE (ms), TASKFLEET_HISTORY_MAX_ENTRY_BYTES,
   * else 10,000 entries per queue, 7 days, 4 KiB per entry.
   * @defaultValue off (TASKFLEET_HISTORY, else off)
   */
  history?: Partial<HistoryOptions> | boolean;
  /** Defaults for every task's options. */
  taskDefaults?: TaskOptions;
}

/** @see TaskfleetOptions.brokerTimeout */
export const DEFAULT_BROKER_TIMEOUT_MS = 10_000;

/**
 * A Taskfleet app: the task registry and the connections to the broker and result backend, opened on
 * first use. Define tasks with `app.task(...)`; the worker imports the same module to run them.
 */
export class Taskfleet {
  /** What the code passed to the constructor, and what configure() was given: merged in #options. */
  readonly #written: TaskfleetOptions;
  #configured: TaskfleetOptions = {};
  #options: TaskfleetOptions;
  /** The broker and backend as resolved from those and the environment (resolveEndpoint), by #validate. */
  #brokerEndpoint!: Endpoint;
  #brokerDefinition!: BrokerDefinition;
  #backendEndpoint: Endpoint | undefined;
  readonly #tasks = new Map<string, TaskDefinition>();
  readonly #schedules = new Map<string, Schedule>();
  #broker: Broker | undefined;
  #backend: ResultBackend | undefined;
  #control: Control | undefined;
  /** A connection to the result backend when it is not the broker's Redis. */
  #backendBroker: RedisBroker | undefined;
  #producer: Producer | undefined;

  constructor(options: TaskfleetOptions = {}) {
    this.#written = { ...options };
    this.#options = { ...options };
    this.#validate();
  }

  /** The broker's URL: --broker (configure()) > TASKFLEET_BROKER > the `broker` option > the default. */
  get brokerUrl(): string {
    return this.#brokerEndpoint.url;
  }
  /** The result backend's URL, by the same rule as the broker's (TASKFLEET_BACKEND); there is no default. */
  get backendUrl(): string | undefined {
    return this.#backendEndpoint?.url;
  }
  get defaultQueue(): string {
    return this.#options.defaultQueue ?? process.env.TASKFLEET_QUEUE ?? 'default';
  }
  get prefix(): string {
    return this.#options.prefix ?? 'tf';
  }
  get resultExpires(): number {
    return this.#options.resultExpires ?? DEFAULT_RESULT_TTL_MS;
  }
  get maxMessageBytes(): number {
    return this.#options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }
  get maxResultBytes(): number {
    return this.#options.maxResultBytes ?? envInteger('TASKFLEET_MAX_RESULT_BYTES') ?? DEFAULT_MAX_RESULT_BYTES;
  }
  /** The broker's kind (its definition in brokers/registry.ts): what it is and what it can do. */
  get brokerDefinition(): BrokerDefinition {
    return this.#brokerDefinition;
  }

  /** What every broker connection of this app is opened with. */
  get brokerSettings(): BrokerSettings {
    return { prefix: this.prefix, maxMessageBytes: this.maxMessageBytes, maxDeadLetters: this.maxDeadLetters };
  }

  get maxDeadLetters(): number {
    return this.#options.maxDeadLetters ?? envInteger('TASKFLEET_MAX_DEAD_LETTERS') ?? DEFAULT_MAX_DEAD_LETTERS;
  }
  get etaHorizon(): number {
    return this.#options.etaHorizon ?? envInteger('TASKFLEET_ETA_HORIZON') ?? DEFAULT_ETA_HORIZON_MS;
  }
  /** The task history's bounds; undefined when none is kept. */
  get historyOptions(): HistoryOptions | undefined {
    return resolveHistory(this.#options.history);
  }
  get brokerTimeout(): number {
    return this.#options.brokerTimeout ?? envInteger('TASKFLEET_BROKER_TIMEOUT') ?? DEFAULT_BROKER_TIMEOUT_MS;
  }

  /** Overrides options before the first connection (the worker applies its flags this way). */
  configure(overrides: TaskfleetOptions): void {
    if (this.#broker || this.#backend || this.#producer) {
      throw new ConfigError('configure() must come before the app first connects (before any enqueue)');
    }
    const given = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
    this.#configured = { ...this.#configured, ...given };
    this.#options = { ...this.#options, ...given };
    this.#validate();
  }

  #validate(): void {
    const sources = { configured: this.#configured, env: process.env, written: this.#written };
    this.#brokerEndpoint = resolveEndpoint('broker', sources) as Endpoint;
    this.#backendEndpoint = resolveEndpoint('backend', sources);
    const { url, from } = this.#brokerEndpoint;
    this.#brokerDefinition = requireBroker(url, from);
    this.#brokerDefinition.validate(url, from, { prefix: this.prefix, queue: this.defaultQueue });
    const backend = this.#backendEndpoint;
    if (backend !== undefined) assertRedisUrl(backend.url, `the result backend URL (from ${backend.from})`);
    assertQueueName(this.defaultQueue);
    resolveHistory(this.#options.history);
    for (const [field, env] of [
      ['maxResultBytes', 'TASKFLEET_MAX_RESULT_BYTES'],
      ['maxDeadLetters', 'TASKFLEET_MAX_DEAD_LETTERS'],
      ['etaHorizon', 'TASKFLEET_ETA_HORIZON'],
      ['brokerTimeout', 'TASKFLEET_BROKER_TIMEOUT'],
    ] as const) {
      const value = this.#options[field] ?? envInteger(env);
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 1)) {
        throw new ConfigError(
          `${field} must be a whole number ≥ 1, not ${value}${this.#options[field] === undefined ? ` (from ${env})` : ''}`,
        );
      }
    }
  }

  /** Registers a task. The handler's argument and return types become the task's. */
  task<A extends unknown[], R>(name: string, handler: Handler<A, R>): Task<A, Awaited<R>>;
  task<A extends unknown[], R>(name: string, options: TaskOptions, handler: Handler<A, R>): Task<A, Awaited<R>>;
  task<A extends unknown[], R>(
    name: string,
    optionsOrHandler: TaskOptions | Handler<A, R>,
    maybeHandler?: Handler<A, R>,
  ): Task<A, Awaited<R>> {
    const handler = typeof optionsOrHandler === 'function' ? optionsOrHandler : maybeHandler;
    const options = typeof optionsOrHandler === 'function' ? {} : optionsOrHandler;
    if (typeof handler !== 'function') throw new ConfigError(`task ${name}: the handler must be a function`);
    if (!name || typeof name !== 'string') throw new ConfigError('a task needs a non-empty name');
    if (this.#tasks.has(name)) throw new ConfigError(`task ${name} is registered twice: task names must be unique`);
    const merged: TaskOptions = { ...this.#options.taskDefaults, ...options };
    validateTaskOptions(name, merged);
    const task = new Task<A, Awaited<R>>(this, name, merged, handler as Handler<A, Awaited<R>>);
    this.#tasks.set(name, task);
    return task;
  }

  /** The registered task of that name, or an error that lists what is registered. */
  definition(name: string): TaskDefinition {
    const task = this.#tasks.get(name);
    if (!task) {
      const known = [...this.#tasks.keys()].join(', ') || 'none';
      throw new TaskfleetError(
        'UNKNOWN_TASK',
        `no task named ${JSON.stringify(name)} is registered (registered: ${known})`,
      );
    }
    return task;
  }

  /**
   * A signature of a task by name, for code that does not import the task (Celery's
   * `app.signature('tasks.add', args)`): `app.signature<number, [number[]]>('total')` is a chain step
   * or chord callback that takes a list of numbers and gives a number. If this app registers tasks,
   * the name must be one of them (UNKNOWN_TASK at enqueue otherwise). An app that registers none is a
   * producer only: names are not checked, calls go to the signature's queue or the default queue, and
   * a worker that does not know the name dead-letters the call (reason unknown-task), recording it
   * FAILURE and failing its chain, chord and errbacks as for any failure.
   */
  signature<R = unknown, Missing extends unknown[] = []>(
    name: string,
    args: readonly unknown[] = [],
    options: ApplyOptions<R> = {},
  ): Signature<Missing, R> {
    if (!name || typeof name !== 'string') throw new ConfigError('a signature needs a task name');
    return new TaskSignature<Missing, R>(this, name, args, options as ApplyOptions<never>);
  }

  get tasks(): ReadonlyMap<string, TaskDefinition> {
    return this.#tasks;
  }

  /**
   * Declares a periodic task, fired by `taskfleet beat`: `{ cron: '0 3 * * *', timeZone: 'Europe/Paris',
   * task: report.s('daily') }` or `{ every: 30_000, task: 'ping' }`. Mistakes (a bad cron, an unknown
   * time zone or task, a duplicate name) throw here. See docs/worker.md, "Periodic tasks".
   */
  schedule(name: string, definition: ScheduleDefinition): Schedule {
    const schedule = parseSchedule(name, definition, { knownTask: (task) => this.#tasks.has(task) });
    addSchedule(this.#schedules, schedule);
    return schedule;
  }

  get schedules(): ReadonlyMap<string, Schedule> {
    return this.#schedules;
  }

  /**
   * The producer's side: the calls an application makes (enqueue, read results, revoke), each within
   * brokerTimeout, on connections of their own. `broker`, `backend` and `control` are the worker's side:
   * they wait for Redis as long as it takes.
   */
  get producer(): Producer {
    this.#producer ??= new Producer(this);
    return this.#producer;
  }

  /** The broker, as the worker, beat and CLI use it: its calls wait for the broker as long as it takes. */
  get broker(): Broker {
    this.#broker ??= this.#brokerDefinition.open(this.brokerUrl, this.brokerSettings);
    return this.#broker;
  }

  /** The result backend; a clear error when none is configured. */
  get backend(): ResultBackend {
    const url = this.backendUrl;
    if (url === undefined) throw new NoResultBackendError('reading results');
    this.#backend ??= new RedisResultBackend(this.#redisFor(url), this.prefix);
    return this.#backend;
  }

  get hasBackend(): boolean {
    return this.backendUrl !== undefined;
  }

  /** Revocations, heartbeats and inspection live in the result backend's Redis. */
  get control(): Control {
    const url = this.backendUrl;
    if (url === undefined) throw new NoResultBackendError('revoke and inspect');
    this.#control ??= new Control(this.#redisFor(url), this.prefix);
    return this.#control;
  }

  /**
   * The result backend is the broker's own Redis (the same URL): a worker's settlements then carry
   * their results, and each tick's results and acknowledgements are one atomic script call.
   */
  get backendIsBroker(): boolean {
    const url = this.backendUrl;
    return url !== undefined && this.#brokerAt(url) !== undefined;
  }

  /** The broker, when it is the Redis at `url`. */
  #brokerAt(url: string): RedisBroker | undefined {
    const broker = this.broker;
    return broker instanceof RedisBroker && broker.url === url ? broker : undefined;
  }

  /** The backend's connection: the broker's own when the backend is the same Redis, else one of its own. */
  #redisFor(url: string) {
    const broker = this.#brokerAt(url);
    if (broker) return broker.redis;
    this.#backendBroker ??= new RedisBroker(url, { prefix: this.prefix });
    return this.#backendBroker.redis;
  }

  /**
   * The task history workers keep (docs/history.md): each queue's recent calls, how each ended, with
   * its arguments and result or error. On a Redis broker; on Kafka, an error that says so.
   */
  get history(): HistoryStore {
    const store = this.broker.history;
    if (store === undefined) {
      throw new TaskfleetError(
        'NO_HISTORY',
        'this broker keeps no task history: workers keep it on a Redis broker only (docs/history.md)',
      );
    }
    return store;
  }

  /** A handle on a result by id, as Celery's AsyncResult(id). */
  result<R = unknown>(id: string): AsyncResult<R> {
    return new AsyncResult<R>(this, id);
  }

  /**
   * Puts dead letters back on their queue (those with the given ids, or all), first clearing the
   * FAILURE recorded when they were dead-lettered, so waiting on them works again. Returns how many.
   */
  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    // A page at a time, each page's results cleared just before it goes back: the store may hold many.
    const forget = async (letters: readonly DeadLetter[]) => {
      await Promise.all(letters.map((l) => (l.taskId ? this.backend.forget(l.taskId) : undefined)));
    };
    return this.broker.requeueDeadLetters(queue, ids, this.hasBackend ? { beforeEach: forget } : {});
  }

  /** Builds, checks and publishes one call. */
  async send<R>(
    task: TaskDefinition,
    args: readonly unknown[],
    options: ApplyOptions,
    chain?: Flow,
  ): Promise<AsyncResult<R>> {
    const envelope = this.envelopeFor(task, args, options, chain);
    await this.producer.publish([envelope]);
    return new AsyncResult<R>(this, envelope.id);
  }

  /** Builds and checks every call, then publishes them together. */
  async sendBulk<R>(
    task: TaskDefinition,
    argsList: readonly (readonly unknown[])[],
    options: ApplyOptions,
  ): Promise<AsyncResult<R>[]> {
    const envelopes = argsList.map((args) => this.envelopeFor(task, args, options));
    await this.producer.publish(envelopes);
    return envelopes.map((envelope) => new AsyncResult<R>(this, envelope.id));
  }

  envelopeFor(task: TaskDefinition, args: readonly unknown[], options: ApplyOptions, chain?: Flow): Envelope {
    const now = Date.now();
    const eta =
      options.eta !== undefined ? +options.eta : options.countdown !== undefined ? now + options.countdown : undefined;
    const expiresOption = options.expires ?? task.options.expires;
    const expires =
      expiresOption === undefined ? undefined : expiresOption instanceof Date ? +expiresOption : now + expiresOption;
    const queue = options.queue ?? task.options.queue ?? this.defaultQueue;
    assertQueueName(queue);
    return createEnvelope({
      task: task.name,
      args,
      queue,
      now,
      etaHorizonMs: this.etaHorizon,
      ...(options.taskId !== undefined ? { id: options.taskId } : {}),
      ...(eta !== undefined ? { eta } : {}),
      ...(expires !== undefined ? { expires } : {}),
      ...((options.priority ?? task.options.priority) !== undefined
        ? { priority: (options.priority ?? task.options.priority) as number }
        : {}),
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
      ...(options.key !== undefined ? { key: options.key } : {}),
      ...(options.headers !== undefined ? { headers: options.headers } : {}),
      ...(chain !== undefined ? { chain } : {}),
    });
  }

  /** Closes every connection this app opened. */
  async close(): Promise<void> {
    await this.#producer?.close();
    await this.#control?.close(); // its own connections only (a report listener); the shared one closes below
    await this.#backend?.close();
    await this.#backendBroker?.close();
    await this.#broker?.close();
  }
}

/** A whole number from the environment; undefined when unset, NaN when not a number (then refused). */
function envInteger(name: string): number | undefined {
  const value = process.env[name];
  return value === undefined || value === '' ? undefined : Number(value);
}

function validateTaskOptions(name: string, o: TaskOptions): void {
  const bad = (field: string, why: string) => {
    throw new ConfigError(`task ${name}: ${field} ${why}`);
  };
  const nonNegative = (field: keyof TaskOptions) => {
    const v = o[field];
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0))
      bad(field, 'must be a number ≥ 0 (ms)');
  };
  if (o.maxRetries !== undefined && !(Number.isInteger(o.maxRetries) && o.maxRetries >= 0)) {
    bad('maxRetries', 'must be an integer ≥ 0');
  }
  for (const f of [
    'retryDelay',
    'retryBackoffMax',
    'softTimeLimit',
    'timeLimit',
    'resultExpires',
    'expires',
  ] as const) {
    nonNegative(f);
  }
  if (o.softTimeLimit !== undefined && o.timeLimit !== undefined && o.softTimeLimit >= o.timeLimit) {
    bad('softTimeLimit', `(${o.softTimeLimit} ms) must be shorter than timeLimit (${o.timeLimit} ms)`);
  }
  if (o.rateLimit !== undefined) parseRate(o.rateLimit);
  if (o.rateLimitScope !== undefined && o.rateLimitScope !== 'worker' && o.rateLimitScope !== 'global') {
    bad('rateLimitScope', "must be 'worker' or 'global'");
  }
  if (o.queue !== undefined) assertQueueName(o.queue);
}
