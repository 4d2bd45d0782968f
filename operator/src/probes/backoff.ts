/**
 * When to try a failing thing again, per key: after a failure the key waits `baseMs`, doubled with each
 * failure in a row up to `maxMs`; a success forgets it. Pure: the caller passes the time.
 */
export class Backoff {
  readonly #baseMs: number;
  readonly #maxMs: number;
  readonly #failing = new Map<string, { failures: number; detail: string; retryAt: number }>();

  constructor({ baseMs = 1000, maxMs = 30_000 }: { baseMs?: number; maxMs?: number } = {}) {
    this.#baseMs = baseMs;
    this.#maxMs = maxMs;
  }

  /** The key's last failure while it must still wait (`now` before its retryAt); undefined when it may go. */
  waiting(key: string, now: number): { failures: number; detail: string; retryAt: number } | undefined {
    const failing = this.#failing.get(key);
    return failing && now < failing.retryAt ? { ...failing } : undefined;
  }

  /** Records a failure; returns the failures in a row and when the key may try again. */
  failed(key: string, detail: string, now: number): { failures: number; retryAt: number } {
    const failures = (this.#failing.get(key)?.failures ?? 0) + 1;
    const retryAt = now + Math.min(this.#maxMs, this.#baseMs * 2 ** (failures - 1));
    this.#failing.set(key, { failures, detail, retryAt });
    return { failures, retryAt };
  }

  succeeded(key: string): void {
    this.#failing.delete(key);
  }

  /** Forgets keys whose wait ended before `before` (nobody tried them since: their object is gone). */
  prune(before: number): void {
    for (const [key, { retryAt }] of this.#failing) if (retryAt < before) this.#failing.delete(key);
  }

  get size(): number {
    return this.#failing.size;
  }
}
