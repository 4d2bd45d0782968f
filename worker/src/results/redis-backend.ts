import type { Redis } from '../brokers/redis/connection.ts';
import { appKeys } from '../brokers/redis/keys.ts';
import { READY_STATES, type ResultBackend, type ResultRecord } from './result.ts';

/**
 * Results as Redis strings with an expiry. Every store is also published on the result's channel,
 * so a waiter is woken by the write itself instead of polling.
 */
export class RedisResultBackend implements ResultBackend {
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof appKeys>;
  #subscriber: Redis | undefined;
  readonly #waiters = new Map<string, Set<(record: ResultRecord) => void>>();

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#keys = appKeys(prefix);
  }

  async store(record: ResultRecord, ttlMs: number): Promise<void> {
    const text = JSON.stringify(record);
    await Promise.all([
      this.#redis.set(this.#keys.result(record.id), text, 'PX', ttlMs),
      this.#redis.publish(this.#keys.resultChannel(record.id), text),
    ]);
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
      this.#subscriber = this.#redis.duplicate({ enableAutoPipelining: false });
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
    this.#subscriber?.disconnect();
  }
}
