import type { Delivery } from '../brokers/broker.ts';
import type { Logger } from '../observe/logger.ts';
import type { TaskDefinition } from '../task.ts';
import type { Clock, Timer } from './clock.ts';
import { parseRate, TokenBucket } from './rate-limit.ts';

/** How long a gate waits before asking a shared limiter that failed again. */
const LIMITER_RETRY_MS = 500;

/** The rate limit every worker shares (Control.rateLimit): 0 when a permit was taken, else the ms to wait. */
export interface SharedRateLimit {
  rateLimit(task: string, intervalMs: number): Promise<number>;
}

/** What the rate gates need of their worker. */
export interface RateGateContext {
  /** How many calls one gate holds; more are put back on the queue. */
  readonly capacity: number;
  readonly clock: Clock;
  readonly log: Logger;
  /**
   * Where `rateLimitScope: 'global'` limits are kept, read when a task's gate is made; undefined (an
   * app without a backend), they are kept per worker, as local ones.
   */
  readonly shared: SharedRateLimit | undefined;
  /** A held call has its permit: line it up to run. */
  admit(delivery: Delivery): void;
  /** A call its gate has no room for: back on the queue, due at `at`. */
  putBack(delivery: Delivery, at: number): void;
  /** The worker is stopping: gates let no more calls through. */
  stopping(): boolean;
}

interface Gate {
  intervalMs: number;
  /** A permit: 0 when taken, else the ms to wait. */
  take: () => Promise<number>;
  queue: Delivery[];
  timer: Timer | undefined;
  draining: boolean;
}

/**
 * Rate-limited calls wait here, outside the slots, so they never block other tasks: one gate per task,
 * letting one call through per permit of the task's limit (Celery's per-worker token bucket, or the
 * limiter every worker shares). A gate holds at most `capacity` calls; more are put back on the queue
 * for when the limit will let them run.
 */
export class RateGates {
  readonly #context: RateGateContext;
  readonly #gates = new Map<string, Gate>();

  constructor(context: RateGateContext) {
    this.#context = context;
  }

  /** Calls held, waiting for a permit. */
  get held(): number {
    let count = 0;
    for (const gate of this.#gates.values()) count += gate.queue.length;
    return count;
  }

  /** Holds a call of a rate-limited task until its gate lets it through. */
  hold(definition: TaskDefinition, delivery: Delivery): void {
    const gate = this.#gate(definition);
    if (gate.queue.length >= this.#context.capacity) {
      this.#context.putBack(delivery, this.#context.clock.now() + (gate.queue.length + 1) * gate.intervalMs);
      return;
    }
    gate.queue.push(delivery);
    void this.#drain(gate);
  }

  /** Stops every gate (at shutdown) and gives back the calls they held. */
  close(): Delivery[] {
    const held: Delivery[] = [];
    for (const gate of this.#gates.values()) {
      // The timer stays set, cancelled: a gate that is closed never drains again.
      gate.timer?.cancel();
      held.push(...gate.queue.splice(0));
    }
    return held;
  }

  #gate(definition: TaskDefinition): Gate {
    let gate = this.#gates.get(definition.name);
    if (!gate) {
      const intervalMs = parseRate(definition.options.rateLimit as string | number);
      const shared = definition.options.rateLimitScope === 'global' ? this.#context.shared : undefined;
      let take: Gate['take'];
      if (shared) {
        take = () => shared.rateLimit(definition.name, intervalMs);
      } else {
        const bucket = new TokenBucket(intervalMs);
        take = async () => bucket.take(this.#context.clock.now());
      }
      gate = { intervalMs, take, queue: [], timer: undefined, draining: false };
      this.#gates.set(definition.name, gate);
    }
    return gate;
  }

  async #drain(gate: Gate): Promise<void> {
    if (gate.draining || gate.timer) return;
    gate.draining = true;
    const { clock } = this.#context;
    const later = (ms: number) => {
      gate.timer = clock.timeout(ms, () => {
        gate.timer = undefined;
        void this.#drain(gate);
      });
    };
    try {
      while (gate.queue.length > 0 && !this.#context.stopping()) {
        const waitMs = await gate.take();
        if (waitMs > 0) {
          later(waitMs);
          return;
        }
        this.#context.admit(gate.queue.shift() as Delivery);
      }
    } catch (error) {
      this.#context.log.warn('rate limiter unavailable; trying again', { error });
      later(LIMITER_RETRY_MS);
    } finally {
      gate.draining = false;
    }
  }
}
