/**
 * Time as the worker's decisions read it, and the timers it waits with. Injected, so that the tests of
 * those decisions move a clock instead of sleeping (test/support/manual-clock.ts).
 */
export interface Clock {
  /** Epoch ms. */
  now(): number;
  /** Calls `callback` once, `ms` from now (as setTimeout: less than 1 ms is 1 ms). */
  timeout(ms: number, callback: () => void): Timer;
  /** Calls `callback` every `ms`, until cancelled. */
  interval(ms: number, callback: () => void): Timer;
}

export interface Timer {
  /** Stops it; does nothing once a timeout has fired, or a timer has been cancelled. */
  cancel(): void;
}

/** The real clock: Date.now and Node's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  timeout(ms, callback) {
    const timer = setTimeout(callback, ms);
    return { cancel: () => clearTimeout(timer) };
  },
  interval(ms, callback) {
    const timer = setInterval(callback, ms);
    return { cancel: () => clearInterval(timer) };
  },
};
