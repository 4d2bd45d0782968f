import type { Redis, Scripts } from '../brokers/redis/connection.ts';
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
  readonly #waiters = new Map<string, Set<(record: ResultRecord) => void>>();
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

  async get(id: string): Promise<ResultRecord | undefined> {
    const text = await this.#redis.get(this.#keys.result(id));
    return text === null ? undefined : (JSON.parse(text) as ResultRecord);
  }

  async waitReady(id: string, timeoutMs: number): Promise<ResultRecord | undefined> {
    const channel = this.#keys.resultChannel(id);
    const { promise, resolve } = Promise.withResolvers<ResultRecord | undefined>();
    const onRecord = (record: ResultRecord) => {
      if (READY_STATES.has(record.state)) resolve(record);
    };
    let waiters = this.#waiters.get(channel);
    if (!waiters) {
      waiters = new Set();
      this.#waiters.set(channel, waiters);
    }
    waiters.add(onRecord);
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    try {
      // Subscribe first, then read: a result stored in between is seen by one or the other.
      await this.#subscribe(channel);
      const current = await this.get(id);
      if (current) onRecord(current);
      return await promise;
    } finally {
      clearTimeout(timer);
      waiters.delete(onRecord);
      if (waiters.size === 0) {
        this.#waiters.delete(channel);
        await this.#subscriber?.unsubscribe(channel).catch(() => {});
      }
    }
  }

  async #subscribe(channel: string): Promise<void> {
    if (!this.#subscriber) {
      // No ready check: ioredis sends SUBSCRIBE as soon as the socket connects, before its ready check's
      // INFO, which a connection already in subscriber mode refuses; the failed check then rejects every
      // waiter. A connection that only subscribes has nothing to wait for (SUBSCRIBE works while loading).
      this.#subscriber = this.#redis.duplicate({ enableAutoPipelining: false, enableReadyCheck: false });
      this.#subscriber.on('message', (ch: string, text: string) => {
        const record = JSON.parse(text) as ResultRecord;
        for (const waiter of this.#waiters.get(ch) ?? []) waiter(record);
      });
    }
    await this.#subscriber.subscribe(channel);
  }

  async forget(id: string): Promise<void> {
    await this.#redis.del(this.#keys.result(id));
  }

  async close(): Promise<void> {
    await this.#batchStored?.catch(() => {});
    this.#subscriber?.disconnect();
  }
}
