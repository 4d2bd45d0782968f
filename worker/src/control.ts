import { connect, type Redis } from './brokers/redis/connection.ts';
import { appKeys } from './brokers/redis/keys.ts';

/** A message on the control channel. */
export type ControlMessage = { type: 'revoke'; ids: string[]; terminate: boolean };

/** What a worker tells the fleet about itself, every heartbeat. */
export interface WorkerHeartbeat {
  id: string;
  hostname: string;
  pid: number;
  queue: string;
  concurrency: number;
  startedAt: number;
  at: number;
  version: string;
  active: { id: string; task: string; startedAt: number; attempt: number }[];
  reserved: number;
  processed: Record<string, number>;
}

/** How long a revocation is remembered (a revoked task not seen by then may run). @defaultValue one day */
export const REVOKE_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * The fleet's shared state outside the broker: revocations (a set with expiry, plus a broadcast so
 * running tasks can be terminated at once) and heartbeats, which `inspect` reads.
 */
export class Control {
  readonly #redis: Redis;
  readonly #keys: ReturnType<typeof appKeys>;
  readonly #owned: boolean;

  constructor(redis: Redis, prefix: string, { owned = false }: { owned?: boolean } = {}) {
    this.#redis = redis;
    this.#keys = appKeys(prefix);
    this.#owned = owned;
  }

  /** A Control with a connection of its own (the operator reads heartbeats this way). */
  static connect(url: string, prefix: string): Control {
    return new Control(connect(url, { connectionName: 'taskfleet-control', maxRetriesPerRequest: 1 }), prefix, {
      owned: true,
    });
  }

  /** Closes the connection if this Control opened it. */
  async close(): Promise<void> {
    if (this.#owned) this.#redis.disconnect();
  }

  get redis(): Redis {
    return this.#redis;
  }

  get channel(): string {
    return this.#keys.control;
  }

  async revoke(ids: readonly string[], { terminate = false }: { terminate?: boolean } = {}): Promise<void> {
    if (ids.length === 0) return;
    const now = Date.now();
    const members = ids.flatMap((id) => [now + REVOKE_TTL_MS, id]);
    const message: ControlMessage = { type: 'revoke', ids: [...ids], terminate };
    await this.#redis
      .multi()
      .zadd(this.#keys.revoked, ...members)
      .zremrangebyscore(this.#keys.revoked, '-inf', now)
      .publish(this.#keys.control, JSON.stringify(message))
      .exec();
  }

  /** Ids revoked and not yet expired. */
  async revoked(): Promise<string[]> {
    return this.#redis.zrangebyscore(this.#keys.revoked, Date.now(), '+inf');
  }

  async beat(heartbeat: WorkerHeartbeat, ttlMs: number): Promise<void> {
    await this.#redis
      .multi()
      .set(this.#keys.worker(heartbeat.id), JSON.stringify(heartbeat), 'PX', ttlMs)
      .zadd(this.#keys.workers, heartbeat.at, heartbeat.id)
      .zremrangebyscore(this.#keys.workers, '-inf', heartbeat.at - 10 * ttlMs)
      .exec();
  }

  async leave(id: string): Promise<void> {
    await this.#redis.multi().del(this.#keys.worker(id)).zrem(this.#keys.workers, id).exec();
  }

  /** Live workers: those whose last heartbeat has not expired. */
  async workers(): Promise<WorkerHeartbeat[]> {
    const ids = await this.#redis.zrange(this.#keys.workers, 0, -1);
    if (ids.length === 0) return [];
    const beats = await this.#redis.mget(ids.map((id) => this.#keys.worker(id)));
    return beats.filter((b): b is string => b !== null).map((b) => JSON.parse(b) as WorkerHeartbeat);
  }
}
