import { createHash } from 'node:crypto';
import { type Backlog, KafkaBroker, type KafkaBrokerOptions, RedisBroker, redact } from 'taskfleet';

/** What the operator learns about a queue from its broker at one instant. */
export interface BrokerReading {
  backlog: Backlog;
  /** Epoch ms of the reading. */
  at: number;
}

/** Where a queue lives, resolved (secrets read) from a TaskQueue spec. */
export type BrokerTarget = RedisTarget | KafkaTarget;

export interface RedisTarget {
  kind: 'redis';
  url: string;
  prefix: string;
  queue: string;
}

export interface KafkaTarget {
  kind: 'kafka';
  brokers: string[];
  prefix: string;
  queue: string;
  /** true: TLS with the system's CAs; or the PEM texts to trust and present. */
  tls?: true | { ca?: string; cert?: string; key?: string };
  sasl?: NonNullable<KafkaBrokerOptions['sasl']>;
}

/**
 * Probes brokers with one connection per distinct broker (not per queue), and at most `concurrency`
 * probes in flight, whatever the number of queues. A connection nobody has probed through for `idleMs`
 * is closed: a rotated password or a changed URL makes a new one, and the old one must not linger.
 */
export class ProbePool {
  readonly #brokers = new Map<string, { broker: RedisBroker | KafkaBroker; usedAt: number }>();
  readonly #concurrency: number;
  readonly #idleMs: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor({ concurrency = 32, idleMs = 600_000 }: { concurrency?: number; idleMs?: number } = {}) {
    this.#concurrency = concurrency;
    this.#idleMs = idleMs;
  }

  async read(target: BrokerTarget, timeoutMs = 5000): Promise<BrokerReading> {
    await this.#slot();
    try {
      const broker = target.kind === 'kafka' ? this.kafkaBroker(target) : this.broker(target);
      const backlog = await withTimeout(
        (async () => {
          if (broker instanceof RedisBroker) await connected(broker);
          return broker.backlog(target.queue);
        })(),
        timeoutMs,
        `probe of ${target.queue} timed out after ${timeoutMs} ms`,
      );
      return { backlog, at: Date.now() };
    } finally {
      this.#release();
    }
  }

  /** The Redis broker's connection (one per distinct broker), shared with the reconciler, which fires schedules through it. */
  broker(target: RedisTarget): RedisBroker {
    return this.#use(
      `redis\u0000${target.url}\u0000${target.prefix}`,
      () =>
        // Fail fast while the broker is away: a probe that queued commands would report stale numbers late.
        new RedisBroker(target.url, {
          prefix: target.prefix,
          connection: { maxRetriesPerRequest: 1, enableOfflineQueue: false },
        }),
    );
  }

  /** The Kafka cluster's client (one per distinct brokers, TLS, credentials and prefix). */
  kafkaBroker(target: KafkaTarget): KafkaBroker {
    const { brokers, prefix, tls, sasl } = target;
    // The key holds a digest, not the credentials and keys themselves.
    const key = `kafka\u0000${createHash('sha256')
      .update(JSON.stringify([brokers, prefix, tls ?? null, sasl ?? null]))
      .digest('hex')}`;
    return this.#use(
      key,
      () => new KafkaBroker({ brokers, prefix, ...(tls ? { tls } : {}), ...(sasl ? { sasl } : {}) }),
    );
  }

  #use<B extends RedisBroker | KafkaBroker>(key: string, create: () => B): B {
    this.#closeIdle();
    let entry = this.#brokers.get(key);
    if (!entry) {
      entry = { broker: create(), usedAt: Date.now() };
      this.#brokers.set(key, entry);
    }
    entry.usedAt = Date.now();
    return entry.broker as B;
  }

  #closeIdle(): void {
    const before = Date.now() - this.#idleMs;
    for (const [key, { broker, usedAt }] of this.#brokers) {
      if (usedAt >= before) continue;
      this.#brokers.delete(key);
      void broker.close().catch(() => {});
    }
  }

  /** Connections open now. */
  get size(): number {
    return this.#brokers.size;
  }

  async #slot(): Promise<void> {
    if (this.#active < this.#concurrency) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#brokers.values()].map((b) => b.broker.close()));
    this.#brokers.clear();
  }
}

/**
 * Waits until a Redis connection is ready. The probe's connection fails commands at once while it is
 * not (no offline queue), so a first probe sent while it still connects would fail for nothing; and
 * when Redis cannot be reached, the connection's own error says why better than a refused command.
 */
async function connected(broker: RedisBroker): Promise<void> {
  const redis = broker.redis;
  if (redis.status === 'ready') return;
  let lastError: Error | undefined;
  const onError = (error: Error) => {
    lastError = error;
  };
  let onReady: (() => void) | undefined;
  let onRetry: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve;
      // Refused or unknown host: the connection retries, having said why in its error.
      onRetry = () => reject(new Error(`cannot connect to Redis at ${redact(broker.url)}: ${lastError?.message}`));
      redis.on('error', onError);
      redis.once('ready', onReady);
      redis.once('reconnecting', onRetry);
    });
  } finally {
    redis.off('error', onError);
    if (onReady) redis.off('ready', onReady);
    if (onRetry) redis.off('reconnecting', onRetry);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The backlog the scaling policy sees. Its `delayed` is the delayed calls that need a worker now: on
 * Redis, those already due. Kafka cannot say which delayed records are due without reading them, and
 * only a running consumer releases them when they are (it holds them in memory until then; no server
 * timer promotes them), so on Kafka every delayed call counts: a queue holding some is never left at
 * zero with them stranded.
 */
export function scalingBacklog(
  kind: BrokerTarget['kind'],
  backlog: Backlog,
): { ready: number; delayed: number; inFlight: number } {
  return {
    ready: backlog.ready,
    delayed: kind === 'kafka' ? backlog.delayed : backlog.due,
    inFlight: backlog.inFlight,
  };
}

/**
 * Rates from two readings of the broker's counters, per second; undefined until two readings exist.
 *
 * The counters: on Redis, the stream's `entries-added` and the group's `entries-read`; on Kafka, the sum
 * of the topics' high watermarks (records ever written) and of what the group has taken past (its
 * committed offsets plus the records finished or handed out above them, from the commit metadata).
 * Both only grow; a retry counts as a completion and a new arrival on both. Kafka's move when the
 * consumers commit, which they do as they settle.
 */
export function ratesBetween(
  previous: BrokerReading | undefined,
  current: BrokerReading,
): { arrival?: number; completion?: number } {
  if (!previous) return {};
  const seconds = (current.at - previous.at) / 1000;
  if (seconds <= 0) return {};
  const rate = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b < a ? undefined : (b - a) / seconds; // a counter that went back: Redis restarted, a topic recreated
  const arrival = rate(previous.backlog.added, current.backlog.added);
  // Delivered minus what is still in flight approximates completions over the interval.
  const completed = (r: BrokerReading) =>
    r.backlog.delivered === undefined ? undefined : r.backlog.delivered - r.backlog.inFlight;
  const completion = rate(completed(previous), completed(current));
  return {
    ...(arrival !== undefined ? { arrival } : {}),
    ...(completion !== undefined ? { completion: Math.max(0, completion) } : {}),
  };
}
