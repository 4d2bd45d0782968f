import { type Backlog, RedisBroker } from 'taskfleet';

/** What the operator learns about a queue from its broker at one instant. */
export interface BrokerReading {
  backlog: Backlog;
  /** Epoch ms of the reading. */
  at: number;
}

/** Where a queue lives, resolved (secrets read) from a TaskQueue spec. */
export interface BrokerTarget {
  kind: 'redis';
  url: string;
  prefix: string;
  queue: string;
}

/**
 * Probes brokers with one connection per distinct broker (not per queue), and at most `concurrency`
 * probes in flight, whatever the number of queues. A Kafka probe will plug in beside the Redis one.
 */
export class ProbePool {
  readonly #brokers = new Map<string, RedisBroker>();
  readonly #concurrency: number;
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor({ concurrency = 32 }: { concurrency?: number } = {}) {
    this.#concurrency = concurrency;
  }

  async read(target: BrokerTarget, timeoutMs = 5000): Promise<BrokerReading> {
    await this.#slot();
    try {
      const broker = this.broker(target);
      const backlog = await withTimeout(
        broker.backlog(target.queue),
        timeoutMs,
        `probe of ${target.queue} timed out after ${timeoutMs} ms`,
      );
      return { backlog, at: Date.now() };
    } finally {
      this.#release();
    }
  }

  /** The broker's connection (one per distinct broker), shared with the reconciler, which fires schedules through it. */
  broker(target: BrokerTarget): RedisBroker {
    const key = `${target.url}\u0000${target.prefix}`;
    let broker = this.#brokers.get(key);
    if (!broker) {
      // Fail fast while the broker is away: a probe that queued commands would report stale numbers late.
      broker = new RedisBroker(target.url, {
        prefix: target.prefix,
        connection: { maxRetriesPerRequest: 1, enableOfflineQueue: false },
      });
      this.#brokers.set(key, broker);
    }
    return broker;
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
    await Promise.all([...this.#brokers.values()].map((b) => b.close()));
    this.#brokers.clear();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Rates from two readings of the broker's counters, per second; undefined until two readings exist. */
export function ratesBetween(
  previous: BrokerReading | undefined,
  current: BrokerReading,
): { arrival?: number; completion?: number } {
  if (!previous) return {};
  const seconds = (current.at - previous.at) / 1000;
  if (seconds <= 0) return {};
  const rate = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b < a ? undefined : (b - a) / seconds; // a counter that went back: Redis restarted
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
