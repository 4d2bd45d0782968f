import type { Clock, Timer } from '../../worker/src/runtime/clock.ts';

interface Pending {
  at: number;
  /** For an interval: how far apart its calls are. */
  every: number | undefined;
  callback: () => void;
  /** Timers due at the same moment fire in the order they were set, as Node's do. */
  order: number;
}

/**
 * A clock that moves only when told: `advance(ms)` fires the timers that fall due, each at its moment,
 * in order. For the unit tests of decisions that depend on time, so that none sleeps.
 */
export class ManualClock implements Clock {
  #now: number;
  #set = 0;
  readonly #pending = new Set<Pending>();

  constructor(now = 0) {
    this.#now = now;
  }

  now(): number {
    return this.#now;
  }

  timeout(ms: number, callback: () => void): Timer {
    return this.#add(ms, undefined, callback);
  }

  interval(ms: number, callback: () => void): Timer {
    return this.#add(ms, delay(ms), callback);
  }

  /** Timers set and not yet fired (for a timeout) or cancelled. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Moves the time on by `ms`, calling each timer that falls due on the way at its moment. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const next = [...this.#pending].filter((p) => p.at <= until).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!next) break;
      this.#now = next.at;
      if (next.every === undefined) this.#pending.delete(next);
      else next.at += next.every;
      next.callback();
    }
    this.#now = until;
  }

  #add(ms: number, every: number | undefined, callback: () => void): Timer {
    const pending: Pending = { at: this.#now + delay(ms), every, callback, order: this.#set++ };
    this.#pending.add(pending);
    return { cancel: () => this.#pending.delete(pending) };
  }
}

/** As Node's timers read a delay: under 1 ms, over 2^31 - 1 ms or not a number, it is 1 ms. */
function delay(ms: number): number {
  return ms >= 1 && ms <= 2 ** 31 - 1 ? ms : 1;
}

/** The next turn of the event loop: the promise callbacks queued so far have run (no clock moves). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
