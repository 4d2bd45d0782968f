import type { SendOptions } from '../brokers/broker.ts';
import { type Redis, type Scripts, sendWithin, untilReady } from '../brokers/redis/connection.ts';
import { appKeys } from '../brokers/redis/keys.ts';
import { READY_STATES, type ResultBackend, type ResultRecord } from './result.ts';

/**
 * Results as Redis strings with an expiry. Every store is also published on the result's channel,
 * so a waiter is woken by the write itself instead of polling.
 */
export class RedisResultBackend implements ResultBackend {
  readonly #redis: Redis & Scripts;
  readonly #keys: ReturnType<typeof appKeys>;
  #subscriber: Redis | undefined;
  /** Per result channel: the result's id, and who waits for it. */
  readonly #waiters = new Map<string, { id: string; listeners: Set<(record: ResultRecord) => void> }>();
  /** Stores made in the same tick: their keys, and (ttl, text, channel) for each. */
  #batch: { keys: string[]; args: (string | number)[] } = { keys: [], args: [] };
  #batchStored: Promise<void> | undefined;

  constructor(redis: Redis & Scripts, prefix: string) {
    this.#redis = redis;
    this.#keys = appKeys(prefix);
  }

  /**
   * Stores made in the same tick go to Redis as one script call, which writes and publishes each:
   * a busy worker sends each record once, in one command per tick, instead of two commands per task.
   * The batch succeeds or fails as one, so each caller learns whether its own record was written.
   * (Its keys may hash to different Cluster slots: the backend talks to one Redis, not a Cluster.)
   */
  store(record: ResultRecord, ttlMs: number): Promise<void> {
    this.#batch.keys.push(this.#keys.result(record.id));
    this.#batch.args.push(ttlMs, JSON.stringify(record), this.#keys.resultChannel(record.id));
    this.#batchStored ??= new Promise<void>((resolve, reject) => {
      setImmediate(() => {
        const { keys, args } = this.#batch;
        this.#batch = { keys: [], args: [] };
        this.#batchStored = undefined;
        this.#redis.storeResults(keys.length, ...keys, ...args).then(() => resolve(), reject);
      });
    });
    return this.#batchStored;
  }

  /** The stored record; with a `deadline` (a producer's read), within it. */
  async get(id: string, { deadline }: SendOptions = {}): Promise<ResultRecord | undefined> {
    const read = () => this.#redis.get(this.#keys.result(id));
    const text = await sendWithin(this.#redis, deadline, read);
    return text === null ? undefined : (JSON.parse(text) as ResultRecord);
  }

  /**
   * Waits up to `timeoutMs` for the result to be ready. With a `deadline`, subscribing and the first
   * read must be done within it; the wait itself is only bounded by `timeoutMs`, and outlasts a Redis
   * restart (the result is read again once the subscription is back: it may have been stored meanwhile).
   */
  async waitReady(id: string, timeoutMs: number, options: SendOptions = {}): Promise<ResultRecord | undefined> {
    const channel = this.#keys.resultChannel(id);
    const { promise, resolve } = Promise.withResolvers<ResultRecord | undefined>();
    const onRecord = (record: ResultRecord) => {
      if (READY_STATES.has(record.state)) resolve(record);
    };
    let waiters = this.#waiters.get(channel);
    if (!waiters) {
      waiters = { id, listeners: new Set() };
      this.#waiters.set(channel, waiters);
    }
    waiters.listeners.add(onRecord);
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    try {
      // Subscribe first, then read: a result stored in between is seen by one or the other.
      await this.#subscribe(channel, options);
      const current = await this.get(id, options);
      if (current) onRecord(current);
      return await promise;
    } finally {
      clearTimeout(timer);
      waiters.listeners.delete(onRecord);
      if (waiters.listeners.size === 0) {
        this.#waiters.delete(channel);
        // Not awaited: the caller has its answer, and a Redis that does not answer must not hold it.
        void this.#subscriber?.unsubscribe(channel).catch(() => {});
      }
    }
  }

  async #subscribe(channel: string, { deadline }: SendOptions): Promise<void> {
    if (!this.#subscriber) {
      // No ready check: ioredis sends SUBSCRIBE as soon as the socket connects, before its ready check's
      // INFO, which a connection already in subscriber mode refuses; the failed check then rejects every
      // waiter. A connection that only subscribes has nothing to wait for (SUBSCRIBE works while loading).
      // It queues its commands while Redis is away, even on a producer's connection: a SUBSCRIBE sent
      // late is harmless, and ioredis resubscribes on reconnect with a call whose failure nobody can
      // catch (with no offline queue, one that loses the race with a new drop crashes the process).
      const subscriber = this.#redis.duplicate({
        enableAutoPipelining: false,
        enableReadyCheck: false,
        enableOfflineQueue: true,
        maxRetriesPerRequest: null,
        autoResendUnfulfilledCommands: true,
        connectionName: 'taskfleet-results',
      });
      subscriber.on('message', (ch: string, text: string) => {
        const record = JSON.parse(text) as ResultRecord;
        for (const waiter of this.#waiters.get(ch)?.listeners ?? []) waiter(record);
      });
      let connected = false;
      subscriber.on('ready', () => {
        if (connected) void this.#readAgain(subscriber);
        connected = true;
      });
      this.#subscriber = subscriber;
    }
    const subscriber = this.#subscriber;
    const send = () => subscriber.subscribe(channel);
    await sendWithin(subscriber, deadline, send);
  }

  /**
   * After the subscriber reconnected: results stored while it was away were published to no one, so
   * each awaited result is read again, once the subscriptions hold again (else one stored between the
   * read and the resubscription would be missed too).
   */
  async #readAgain(subscriber: Redis): Promise<void> {
    const awaited = [...this.#waiters];
    if (awaited.length === 0) return;
    try {
      await subscriber.subscribe(...awaited.map(([channel]) => channel));
      if (!(await untilReady(this.#redis))) return;
      await Promise.all(
        awaited.map(async ([channel, { id }]) => {
          const record = await this.get(id);
          if (record) for (const waiter of this.#waiters.get(channel)?.listeners ?? []) waiter(record);
        }),
      );
    } catch {
      // The connection dropped again: its next 'ready' reads them again.
    }
  }

  async forget(id: string, { deadline }: SendOptions = {}): Promise<void> {
    const send = () => this.#redis.del(this.#keys.result(id));
    await sendWithin(this.#redis, deadline, send);
  }

  async close(): Promise<void> {
    await this.#batchStored?.catch(() => {});
    this.#subscriber?.disconnect();
  }
}
