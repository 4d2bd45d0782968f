import { randomUUID } from 'node:crypto';
import type { SendOptions } from './brokers/broker.ts';
import { connect, type Redis, type Scripts, sendWithin, withScripts } from './brokers/redis/connection.ts';
import { appKeys } from './brokers/redis/keys.ts';

/**
 * A message on the control channel: revoke calls, or `report`: every worker of `queue` writes its
 * heartbeat now, with `report: id`, and says so on the reports channel (see {@link Control.report}).
 */
export type ControlMessage =
  | { type: 'revoke'; ids: string[]; terminate: boolean }
  | { type: 'report'; id: string; queue: string };

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
  /** The last report request this worker answered (its heartbeat is at least that fresh)… */
  report?: string;
  /** …and when it answered (epoch ms): the moment of the counts the operator ranked its pod by. */
  reportAt?: number;
}

/** What a worker does with what comes on the control channel (see {@link Control.listen}). */
export interface ControlListener {
  message(message: ControlMessage): void;
  /** A message that is not JSON, or that `message` threw on: it is dropped. */
  invalid(error: unknown): void;
  /** The connection is ready, at first and after each reconnect: messages sent while it was away were missed. */
  connected(): void;
}

export interface ControlSubscription {
  /** Resolves once the channel is subscribed to. */
  readonly subscribed: Promise<void>;
  /** Unsubscribes and closes the connection. */
  close(): void;
}

/** How long a revocation is remembered (a revoked task not seen by then may run). @defaultValue one day */
export const REVOKE_TTL_MS = 24 * 60 * 60 * 1000;

/**
 * The fleet's shared state outside the broker: revocations (a set with expiry, plus a broadcast so
 * running tasks can be terminated at once), heartbeats, which `inspect` reads, and the rate limits
 * every worker shares.
 */
export class Control {
  readonly #redis: Redis & Scripts;
  readonly #keys: ReturnType<typeof appKeys>;
  readonly #owned: boolean;
  /** Report requests waiting for answers: id → workers yet to answer, those who did, and the end of the wait. */
  readonly #reports = new Map<string, { pending: Set<string>; answered: Set<string>; done: () => void }>();
  #reportListener: Promise<Redis> | undefined;

  constructor(redis: Redis & Scripts, prefix: string, { owned = false }: { owned?: boolean } = {}) {
    this.#redis = redis;
    this.#keys = appKeys(prefix);
    this.#owned = owned;
  }

  /** A Control with a connection of its own (the operator reads heartbeats this way). */
  static connect(url: string, prefix: string): Control {
    const redis = connect(url, { connectionName: 'taskfleet-control', maxRetriesPerRequest: 1 });
    return new Control(withScripts(redis), prefix, { owned: true });
  }

  /** Closes the connection if this Control opened it. */
  async close(): Promise<void> {
    const replies = this.#reportListener;
    this.#reportListener = undefined;
    if (replies) (await replies.catch(() => undefined))?.disconnect();
    if (this.#owned) this.#redis.disconnect();
  }

  get redis(): Redis {
    return this.#redis;
  }

  get channel(): string {
    return this.#keys.control;
  }

  /** Where workers say they answered a report request: `{ id, worker }`. */
  get reportsChannel(): string {
    return `${this.#keys.control}:reports`;
  }

  /** Revokes calls; with a `deadline` (a producer's revoke), within it (see SendOptions). */
  async revoke(
    ids: readonly string[],
    { terminate = false, deadline }: { terminate?: boolean } & SendOptions = {},
  ): Promise<void> {
    if (ids.length === 0) return;
    const message: ControlMessage = { type: 'revoke', ids: [...ids], terminate };
    const send = async () => {
      const now = Date.now();
      const members = ids.flatMap((id) => [now + REVOKE_TTL_MS, id]);
      await this.#redis
        .multi()
        .zadd(this.#keys.revoked, ...members)
        .zremrangebyscore(this.#keys.revoked, '-inf', now)
        .publish(this.#keys.control, JSON.stringify(message))
        .exec();
    };
    await sendWithin(this.#redis, deadline, send);
  }

  /**
   * Listens on the control channel, on a connection of its own (a subscribed connection sends nothing
   * else). The subscription is returned at once, so that it can be closed while it is still subscribing.
   */
  listen(listener: ControlListener): ControlSubscription {
    const subscriber = this.#redis.duplicate({ enableAutoPipelining: false });
    subscriber.on('message', (_channel: string, text: string) => {
      try {
        listener.message(JSON.parse(text) as ControlMessage);
      } catch (error) {
        listener.invalid(error);
      }
    });
    subscriber.on('ready', () => listener.connected());
    return {
      subscribed: subscriber.subscribe(this.channel).then(() => {}),
      close: () => subscriber.disconnect(),
    };
  }

  /**
   * Takes a permit of `task`'s rate limit shared by every worker (one permit every `intervalMs`, on
   * Redis' clock: see scripts/rate-limit.lua). 0 when a permit was taken, else the ms until one may be.
   */
  async rateLimit(task: string, intervalMs: number): Promise<number> {
    return Number(await this.#redis.rateLimit(this.#keys.rateLimit(task), intervalMs));
  }

  /** Ids revoked and not yet expired. */
  async revoked(): Promise<string[]> {
    return this.#redis.zrangebyscore(this.#keys.revoked, Date.now(), '+inf');
  }

  /**
   * Writes a worker's heartbeat. `answering`: the report request it answers; the answer is published in
   * the same transaction, so whoever hears it reads the new heartbeat.
   */
  async beat(heartbeat: WorkerHeartbeat, ttlMs: number, { answering }: { answering?: string } = {}): Promise<void> {
    const multi = this.#redis
      .multi()
      .set(this.#keys.worker(heartbeat.id), JSON.stringify(heartbeat), 'PX', ttlMs)
      .zadd(this.#keys.workers, heartbeat.at, heartbeat.id)
      .zremrangebyscore(this.#keys.workers, '-inf', heartbeat.at - 10 * ttlMs);
    if (answering) multi.publish(this.reportsChannel, JSON.stringify({ id: answering, worker: heartbeat.id }));
    await multi.exec();
  }

  /**
   * Fresh heartbeats of a queue's workers: asks every worker of `queue` to write its heartbeat now, and
   * waits until each live worker that `expect` accepts has answered, for `timeoutMs` at most. A worker
   * that does not answer in time (an older version, a stuck process, one that just died) keeps its last
   * heartbeat, at most one heartbeat interval old; `answered` says which heartbeats are fresh.
   */
  async report(
    queue: string,
    {
      timeoutMs = 500,
      expect = () => true,
    }: { timeoutMs?: number; expect?: (worker: WorkerHeartbeat) => boolean } = {},
  ): Promise<{ workers: WorkerHeartbeat[]; answered: Set<string> }> {
    const ofQueue = async () => (await this.workers()).filter((w) => w.queue === queue);
    const pending = new Set((await ofQueue()).filter(expect).map((w) => w.id));
    const answered = new Set<string>();
    if (pending.size > 0) {
      await this.#listenForReports();
      const id = randomUUID();
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#reports.set(id, { pending, answered, done: resolve });
      const timer = setTimeout(resolve, timeoutMs);
      try {
        const message: ControlMessage = { type: 'report', id, queue };
        await this.#redis.publish(this.#keys.control, JSON.stringify(message));
        await promise;
      } finally {
        clearTimeout(timer);
        this.#reports.delete(id);
      }
    }
    return { workers: await ofQueue(), answered };
  }

  /** Subscribes (once) to the reports channel, on a connection of its own. */
  async #listenForReports(): Promise<void> {
    this.#reportListener ??= (async () => {
      const subscriber = this.#redis.duplicate({ enableAutoPipelining: false });
      subscriber.on('error', () => {});
      subscriber.on('message', (_channel: string, text: string) => {
        let reply: { id?: unknown; worker?: unknown };
        try {
          reply = JSON.parse(text);
        } catch {
          return;
        }
        const entry = typeof reply.id === 'string' ? this.#reports.get(reply.id) : undefined;
        if (!entry || typeof reply.worker !== 'string') return;
        entry.answered.add(reply.worker);
        entry.pending.delete(reply.worker);
        if (entry.pending.size === 0) entry.done();
      });
      await subscriber.subscribe(this.reportsChannel);
      return subscriber;
    })();
    try {
      await this.#reportListener;
    } catch (error) {
      this.#reportListener = undefined;
      throw error;
    }
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
