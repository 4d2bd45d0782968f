import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis, Scripts } from '../brokers/redis/connection.ts';
import { leaseKeys } from '../brokers/redis/keys.ts';

/**
 * What a Scheduler asks of its host's leader election: whether it holds the lease now, and the
 * fencing token of that holding (larger for every new holding), which the store uses to refuse fires
 * of a holder that lost the lease without noticing (a long pause, a partition).
 */
export interface FencingLease {
  /** The fencing domain: tokens of different leases are never compared. */
  readonly name: string;
  /** The fencing token of the holding in force, or undefined when this host does not hold the lease. */
  current(): number | undefined;
  /** A fire was fenced off: a newer holder exists, so this host must stop acting as the holder. */
  lost?(): void;
}

export interface RedisLeaseOptions {
  /** @defaultValue 'tf' */
  prefix?: string;
  /** @defaultValue 'beat' */
  name?: string;
  /** Who holds it, in logs and in the lease's value. @defaultValue `<hostname>:<pid>:<random>` */
  identity?: string;
  /** A holder that stops renewing loses the lease after this long (ms). @defaultValue 10_000 */
  ttlMs?: number;
  /** A monotonic clock in ms, for how long a holding lasts. @defaultValue performance.now */
  monotonic?: () => number;
}

/**
 * A lease in Redis, taken with SET NX PX and a fencing token from a counter, renewed and released by
 * compare-and-set on (token, holder), as scripts/lease-*.lua do.
 *
 * A holder counts itself the holder for two thirds of the duration after it sent its last successful
 * renewal: Redis starts the duration when the command arrives, so the holder stops before the key can
 * expire, and one failed renewal (one every third) does not drop it.
 */
export class RedisLease implements FencingLease {
  readonly name: string;
  readonly identity: string;
  readonly ttlMs: number;
  readonly #redis: Redis & Scripts;
  readonly #keys: { holder: string; token: string };
  readonly #monotonic: () => number;
  #holding: { token: number; validUntil: number } | undefined;

  constructor(redis: Redis & Scripts, options: RedisLeaseOptions = {}) {
    this.#redis = redis;
    this.name = options.name ?? 'beat';
    this.identity = options.identity ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.ttlMs = options.ttlMs ?? 10_000;
    this.#keys = leaseKeys(options.prefix ?? 'tf', this.name);
    this.#monotonic = options.monotonic ?? (() => performance.now());
  }

  current(): number | undefined {
    if (this.#holding && this.#monotonic() < this.#holding.validUntil) return this.#holding.token;
    return undefined;
  }

  lost(): void {
    this.#holding = undefined;
  }

  /**
   * Renews the holding, or takes the lease if nobody holds it; returns the token held after, if any.
   * Throws when Redis cannot be reached (the holding then lapses by itself).
   */
  async acquireOrRenew(): Promise<number | undefined> {
    const sentAt = this.#monotonic();
    if (this.#holding) {
      const renewed = Number(
        await this.#redis.leaseRenew(this.#keys.holder, this.#value(this.#holding.token), this.ttlMs),
      );
      if (renewed === 1) {
        this.#holding = { token: this.#holding.token, validUntil: sentAt + (this.ttlMs * 2) / 3 };
        return this.#holding.token;
      }
      this.#holding = undefined;
    }
    const [token, holder] = (await this.#redis.leaseAcquire(
      this.#keys.holder,
      this.#keys.token,
      this.identity,
      this.ttlMs,
    )) as [number, string, number];
    if (holder !== this.identity) return undefined;
    this.#holding = { token: Number(token), validUntil: sentAt + (this.ttlMs * 2) / 3 };
    return this.#holding.token;
  }

  /** Who holds the lease now, by Redis. */
  async holder(): Promise<{ identity: string; token: number; ttlMs: number } | undefined> {
    const [value, ttl] = await Promise.all([this.#redis.get(this.#keys.holder), this.#redis.pttl(this.#keys.holder)]);
    const match = value ? /^(\d+) (.*)$/.exec(value) : null;
    if (!match) return undefined;
    return { token: Number(match[1]), identity: match[2] as string, ttlMs: ttl };
  }

  /** Gives the lease up if this still holds it, so another host takes over at once. */
  async release(): Promise<boolean> {
    const holding = this.#holding;
    this.#holding = undefined;
    if (!holding) return false;
    return Number(await this.#redis.leaseRelease(this.#keys.holder, this.#value(holding.token))) === 1;
  }

  #value(token: number): string {
    return `${token} ${this.identity}`;
  }
}
