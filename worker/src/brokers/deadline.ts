import { BrokerUnavailableError } from '../errors.ts';
import { redact, redactText } from './redact.ts';

/** What a producer call talks to, for the error that says it could not: its role and URL. */
export interface CallTarget {
  what: 'broker' | 'result backend';
  url: string;
}

/**
 * How long one producer call (delay, apply, a workflow's delay, get()'s reads, revoke) may wait for the
 * broker or the result backend: the app's brokerTimeout, started when the call is. Its signal aborts
 * when the time is up; the adapter that holds the call then gives up, and says whether anything of it
 * may have been sent. Clear it when the call settles: its timer would keep a process alive. It is made
 * for every producer call, so it is kept cheap: one timer, and an AbortSignal only when one is asked for
 * (a call that waits for its connection).
 */
export class Deadline {
  readonly ms: number;
  readonly target: CallTarget;
  #passed = false;
  /** What to do when the time is up: reject the races in progress, abort the signal if one was made. */
  readonly #onPass = new Set<() => void>();
  #controller: AbortController | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(ms: number, target: CallTarget) {
    this.ms = ms;
    this.target = target;
    this.#timer = setTimeout(() => {
      this.#passed = true;
      for (const onPass of this.#onPass) onPass();
    }, ms);
  }

  /** Aborts when the time is up. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      const controller = new AbortController();
      if (this.#passed) controller.abort();
      else this.#onPass.add(() => controller.abort());
      this.#controller = controller;
    }
    return this.#controller.signal;
  }

  get passed(): boolean {
    return this.#passed;
  }

  /** Settles as `work` does, unless the time is up first: then rejects with `late()`. */
  race<T>(work: Promise<T>, late: () => Error): Promise<T> {
    if (this.#passed) {
      work.catch(() => {}); // given up on: its outcome no longer matters to anyone
      return Promise.reject(late());
    }
    return new Promise<T>((resolve, reject) => {
      const onPass = () => reject(late());
      this.#onPass.add(onPass);
      // Settling after late() is a no-op, and its rejection is handled here: nobody else awaits it.
      work.then(
        (value) => {
          this.#onPass.delete(onPass);
          resolve(value);
        },
        (error: unknown) => {
          this.#onPass.delete(onPass);
          reject(error);
        },
      );
    });
  }

  /**
   * The error for a call that gave up: `maybeSent` when its commands had been handed to the connection
   * (the broker may have applied them, or may still); `timedOut` when its time was up (else its
   * connection failed first); `reason`, what went wrong with the connection, if known.
   */
  unavailable(
    { maybeSent, timedOut }: { maybeSent: boolean; timedOut: boolean },
    reason?: string,
    cause?: unknown,
  ): BrokerUnavailableError {
    return new BrokerUnavailableError({
      what: this.target.what,
      url: redact(this.target.url),
      timeoutMs: this.ms,
      maybeSent,
      timedOut,
      ...(reason !== undefined ? { reason: redactText(reason) } : {}),
      ...(cause !== undefined ? { cause } : {}),
    });
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/** Runs `call` within a fresh deadline of `ms` against `target`, cleared when it settles. */
export async function withDeadline<T>(
  ms: number,
  target: CallTarget,
  call: (deadline: Deadline) => Promise<T>,
): Promise<T> {
  const deadline = new Deadline(ms, target);
  try {
    return await call(deadline);
  } finally {
    deadline.clear();
  }
}
