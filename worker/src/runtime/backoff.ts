/** How long to wait before retry number `retry` (1 for the first retry). */
export interface RetryPolicy {
  /** ms before the first retry. @defaultValue 1000 */
  retryDelay: number;
  /** Double the delay at each retry (Celery's retry_backoff). @defaultValue false */
  retryBackoff: boolean;
  /** Cap on a backed-off delay, ms. @defaultValue 600_000 */
  retryBackoffMax: number;
  /** With backoff, pick uniformly in [0, delay] so a crowd of retries spreads out. @defaultValue true */
  retryJitter: boolean;
}

export function retryDelayMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  if (!policy.retryBackoff) return policy.retryDelay;
  const delay = Math.min(policy.retryBackoffMax, policy.retryDelay * 2 ** (retry - 1));
  return policy.retryJitter ? Math.round(random() * delay) : delay;
}
