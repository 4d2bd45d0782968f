import { FairQueue, namespaceOf } from './fair-queue.ts';

export interface WorkQueueOptions {
  /** First retry delay of a failing key. @defaultValue 200 */
  baseDelayMs?: number;
  /** @defaultValue 60_000 */
  maxDelayMs?: number;
  /**
   * Keys of one namespace processed at once while another namespace has keys waiting (see
   * {@link FairQueue}). @defaultValue 4
   */
  perNamespace?: number;
  /** Idle loops a namespace at its share leaves to the others. @defaultValue 1 */
  reserve?: number;
}

/**
 * A work queue of keys (namespace/name), as controller-runtime's: a key is processed by one worker at a
 * time, adds while it is queued collapse into one, an add while it is processing runs it once more
 * afterwards, failures come back with exponential backoff, and `addAfter` schedules the next poll.
 *
 * Unlike controller-runtime's, it is fair between namespaces: keys are served round-robin by namespace,
 * and a namespace holding its share of the loops does not take the last idle one. One tenant whose
 * reconciles are slow (a broker that never answers) then cannot make another tenant's queue wait.
 */
export class WorkQueue {
  readonly #queue: FairQueue<string>;
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #failures = new Map<string, number>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  #closed = false;

  constructor({ baseDelayMs = 200, maxDelayMs = 60_000, perNamespace = 4, reserve = 1 }: WorkQueueOptions = {}) {
    this.#baseDelayMs = baseDelayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#queue = new FairQueue({ share: perNamespace, reserve });
  }

  /** Keys waiting for a worker. */
  get length(): number {
    return this.#queue.size;
  }

  add(key: string): void {
    if (this.#closed) return;
    const timer = this.#timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.#timers.delete(key);
    }
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(namespaceOf(key), key);
    this.#dispatch();
  }

  /** Adds the key after `ms`, unless it is added sooner (a sooner add replaces the timer). */
  addAfter(key: string, ms: number): void {
    if (this.#closed || this.#queued.has(key)) return;
    const existing = this.#timers.get(key);
    if (existing) clearTimeout(existing);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Adds the key back after a delay that doubles with each consecutive failure. */
  addRateLimited(key: string): number {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (failures - 1));
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets the key's failure count (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Drops every trace of the key (its object is gone). */
  remove(key: string): void {
    this.forget(key);
    const timer = this.#timers.get(key);
    if (timer) clearTimeout(timer);
    this.#timers.delete(key);
  }

  /** The next key to process; undefined once the queue is closed. */
  async get(): Promise<string | undefined> {
    if (this.#closed) return undefined;
    const next = new Promise<string | undefined>((resolve) => this.#waiters.push(resolve));
    this.#dispatch();
    return next;
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    this.#queue.release(namespaceOf(key));
    if (this.#dirty.delete(key)) this.add(key);
    // A key held back by its namespace's share may go now.
    this.#dispatch();
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  /** Hands waiting keys to idle workers, as far as fairness allows. */
  #dispatch(): void {
    while (this.#waiters.length > 0) {
      const next = this.#queue.take(this.#waiters.length);
      if (!next) return;
      this.#queued.delete(next.item);
      this.#processing.add(next.item);
      (this.#waiters.shift() as (key: string) => void)(next.item);
    }
  }
}
