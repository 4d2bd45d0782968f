import { ConfigError } from '../errors.ts';

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/** Parses Celery's rate strings ("10/s", "100/m", "5/h"; a bare number means per second) to ms per permit. */
export function parseRate(rate: string | number): number {
  const match =
    typeof rate === 'number'
      ? [String(rate), String(rate), 's']
      : /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?\s*$/.exec(rate);
  const count = Number(match?.[1]);
  const unit = units[match?.[2] ?? 's'];
  if (!match || !unit || !(count > 0 && Number.isFinite(count))) {
    throw new ConfigError(`rate limit ${JSON.stringify(rate)} is not valid: write it as "10/s", "100/m" or "5/h"`);
  }
  return unit / count;
}

/**
 * Celery's per-worker token bucket: one permit every `intervalMs`, capacity one, so permits are spread
 * evenly rather than spent in bursts.
 */
export class TokenBucket {
  readonly intervalMs: number;
  #nextAt = 0;
  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }
  /** Takes a permit and returns 0, or returns how many ms until one is available. */
  take(now: number): number {
    if (now < this.#nextAt) return this.#nextAt - now;
    this.#nextAt = now + this.intervalMs;
    return 0;
  }
}
