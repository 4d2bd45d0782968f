import { type Backlog, TaskfleetError } from 'taskfleet';
import { type ProbeConnection, ProbeTimeoutError, type ScalingBacklog } from '../brokers/definition.ts';
import type { KafkaTarget } from '../brokers/kafka/probe.ts';
import type { RedisTarget } from '../brokers/redis/probe.ts';
import { type BrokerTarget, probeOf } from '../brokers/registry.ts';
import { FairQueue } from '../runtime/fair-queue.ts';
import { Backoff } from './backoff.ts';

export type { BrokerTarget, KafkaTarget, RedisTarget };

/** What the operator learns about a queue from its broker at one instant. */
export interface BrokerReading {
  backlog: Backlog;
  /** Epoch ms of the reading. */
  at: number;
}

export interface ProbePoolOptions {
  /** Probes in flight at once, all namespaces together. @defaultValue 32 */
  concurrency?: number;
  /**
   * Probes of one namespace in flight at once while another namespace waits for a slot; a namespace at
   * this share also leaves the last free slot to others. @defaultValue a quarter of `concurrency`
   */
  perNamespace?: number;
  /** A connection unused this long is closed. @defaultValue 600_000 */
  idleMs?: number;
  /**
   * How long a new connection may take to answer (Redis: until it is ready; Kafka: the TCP connection,
   * and each request), so that an address that accepts and never answers costs little. @defaultValue 2000
   */
  connectTimeoutMs?: number;
  /** Backoff of a target whose probes keep failing: the first delay, doubled per failure up to `maxMs`. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** The clock of the backoff and of the readings. @defaultValue Date.now */
  now?: () => number;
}

/**
 * A probe that failed, or that was not sent because the target's probes keep failing and it is backing
 * off. `detail` is what went wrong (the same for every probe that fails the same way, so an Event naming
 * it is not repeated); the message adds when the next probe goes out.
 */
export class ProbeFailedError extends TaskfleetError {
  override name = 'ProbeFailedError';
  readonly detail: string;
  /** Failures in a row, this one included. */
  readonly failures: number;
  /** Epoch ms from which the target is probed again. */
  readonly retryAt: number;
  /** false: no probe was sent; the last failure is reported again. */
  readonly probed: boolean;
  constructor(detail: string, { failures, retryAt, probed }: { failures: number; retryAt: number; probed: boolean }) {
    const when = new Date(Math.ceil(retryAt / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    const times = failures === 1 ? 'failed once' : `failed ${failures} times in a row`;
    super('PROBE_FAILED', `${detail} (${times}; next probe at ${when})`);
    this.detail = detail;
    this.failures = failures;
    this.retryAt = retryAt;
    this.probed = probed;
  }
}

/**
 * Probes brokers with one connection per distinct broker (not per queue), and at most `concurrency`
 * probes in flight, whatever the number of queues. A connection nobody has probed through for `idleMs`
 * is closed: a rotated password or a changed URL makes a new one, and the old one must not linger.
 *
 * Fair between tenants: the slots are shared round-robin between namespaces (see FairQueue); a target
 * (broker and queue) whose probes keep failing is probed again only after a backoff that doubles per
 * failure, its last failure reported meanwhile; and a connection that does not answer within
 * `connectTimeoutMs` is given up and dropped. TaskQueues of one namespace pointing at an address that
 * never answers then cost the others next to nothing.
 */
export class ProbePool {
  readonly #connections = new Map<string, { connection: ProbeConnection; usedAt: number }>();
  readonly #concurrency: number;
  readonly #idleMs: number;
  readonly #connectTimeoutMs: number;
  readonly #backoff: Backoff;
  readonly #now: () => number;
  readonly #slots: FairQueue<() => void>;
  #active = 0;

  constructor(options: ProbePoolOptions = {}) {
    this.#concurrency = options.concurrency ?? 32;
    this.#idleMs = options.idleMs ?? 600_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.#backoff = new Backoff(options.backoff);
    this.#now = options.now ?? Date.now;
    this.#slots = new FairQueue({ share: options.perNamespace ?? Math.max(1, Math.ceil(this.#concurrency / 4)) });
  }

  /**
   * The queue's backlog, read from its broker. Throws ProbeFailedError when the probe fails, and at once,
   * sending nothing, while the target backs off after failures.
   */
  async read(
    target: BrokerTarget,
    { namespace = '', timeoutMs = 5000 }: { namespace?: string; timeoutMs?: number } = {},
  ): Promise<BrokerReading> {
    const key = `${probeOf(target).connectionKey(target)}\u0000${target.queue}`;
    const waiting = this.#backoff.waiting(key, this.#now());
    if (waiting) throw new ProbeFailedError(waiting.detail, { ...waiting, probed: false });
    await this.#slot(namespace);
    try {
      const connection = this.connection(target);
      let backlog: Backlog;
      try {
        backlog = await withTimeout(
          (async () => {
            await connection.ready();
            return connection.backlog(target.queue);
          })(),
          timeoutMs,
          `probe of ${target.queue} timed out after ${timeoutMs} ms`,
        );
      } catch (error) {
        // A connection that never answered is not kept: the next probe, after the backoff, opens a new one.
        if (error instanceof ProbeTimeoutError) this.#drop(connection);
        const detail = connection.describe((error as Error).message);
        throw new ProbeFailedError(detail, { ...this.#backoff.failed(key, detail, this.#now()), probed: true });
      }
      this.#backoff.succeeded(key);
      return { backlog, at: this.#now() };
    } finally {
      this.#release(namespace);
    }
  }

  /**
   * The connection to a target's broker: one per distinct broker, prefix and credentials (not per
   * queue), shared with the reconciler, which fires schedules through its broker.
   */
  connection(target: BrokerTarget): ProbeConnection {
    const probe = probeOf(target);
    const key = probe.connectionKey(target);
    this.#closeIdle();
    let entry = this.#connections.get(key);
    if (!entry) {
      entry = { connection: probe.open(target, { connectTimeoutMs: this.#connectTimeoutMs }), usedAt: this.#now() };
      this.#connections.set(key, entry);
    }
    entry.usedAt = this.#now();
    return entry.connection;
  }

  #drop(connection: ProbeConnection): void {
    for (const [key, entry] of this.#connections) {
      if (entry.connection !== connection) continue;
      this.#connections.delete(key);
      void connection.close().catch(() => {});
    }
  }

  #closeIdle(): void {
    const before = this.#now() - this.#idleMs;
    for (const [key, { connection, usedAt }] of this.#connections) {
      if (usedAt >= before) continue;
      this.#connections.delete(key);
      void connection.close().catch(() => {});
    }
    // The failures of a target nobody has probed for as long (its TaskQueue deleted or changed) are forgotten.
    this.#backoff.prune(before);
  }

  /** Connections open now. */
  get size(): number {
    return this.#connections.size;
  }

  /** Probes in flight now. */
  get active(): number {
    return this.#active;
  }

  #slot(namespace: string): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#slots.push(namespace, resolve);
      this.#dispatch();
    });
  }

  #release(namespace: string): void {
    this.#active--;
    this.#slots.release(namespace);
    this.#dispatch();
  }

  /** Gives free slots to waiting probes, as far as fairness allows. */
  #dispatch(): void {
    for (;;) {
      const next = this.#slots.take(this.#concurrency - this.#active);
      if (!next) return;
      this.#active++;
      next.item();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#connections.values()].map((entry) => entry.connection.close()));
    this.#connections.clear();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeTimeoutError(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The backlog the scaling policy sees: what a broker of this kind says needs a worker now. */
export function scalingBacklog(kind: BrokerTarget['kind'], backlog: Backlog): ScalingBacklog {
  return probeOf({ kind }).scalingBacklog(backlog);
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
