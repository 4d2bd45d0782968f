import { redact } from 'taskfleet';
import { RedisBroker } from 'taskfleet/operator';
import type { BrokerProbe, ProbeConnection } from '../definition.ts';
import { ProbeTimeoutError } from '../definition.ts';

/** A queue on Redis, resolved (its URL read from a Secret if need be) from a TaskQueue spec. */
export interface RedisTarget {
  kind: 'redis';
  url: string;
  prefix: string;
  queue: string;
}

export const redisProbe: BrokerProbe<RedisTarget> = {
  connectionKey: ({ url, prefix }) => `redis\u0000${url}\u0000${prefix}`,

  open({ url, prefix }, { connectTimeoutMs }): ProbeConnection {
    // Fail fast while the broker is away: a probe that queued commands would report stale numbers late.
    const broker = new RedisBroker(url, {
      prefix,
      connection: { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: connectTimeoutMs },
    });
    return {
      broker,
      ready: () => connected(broker, connectTimeoutMs),
      backlog: (queue) => broker.backlog(queue),
      describe: (message) => message,
      close: () => broker.close(),
    };
  },

  // Only the delayed calls already due need a worker now.
  scalingBacklog: ({ ready, due, inFlight }) => ({ ready, delayed: due, inFlight }),
};

/**
 * Waits until a Redis connection is ready, for `timeoutMs` at most. The probe's connection fails
 * commands at once while it is not (no offline queue), so a first probe sent while it still connects
 * would fail for nothing; and when Redis cannot be reached, the connection's own error says why better
 * than a refused command. An address that accepts the connection and never answers gives neither
 * `ready` nor `reconnecting`: the timeout ends that wait.
 */
async function connected(broker: RedisBroker, timeoutMs: number): Promise<void> {
  const redis = broker.redis;
  if (redis.status === 'ready') return;
  const where = redact(broker.url);
  let lastError: Error | undefined;
  const onError = (error: Error) => {
    lastError = error;
  };
  let onReady: (() => void) | undefined;
  let onRetry: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      onReady = resolve;
      // Refused or unknown host: the connection retries, having said why in its error.
      onRetry = () => reject(new Error(`cannot connect to Redis at ${where}: ${lastError?.message}`));
      timer = setTimeout(() => {
        const why = `no answer within ${timeoutMs} ms: is Redis listening there, and reachable from the operator?`;
        reject(new ProbeTimeoutError(`cannot connect to Redis at ${where}: ${why}`));
      }, timeoutMs);
      redis.on('error', onError);
      redis.once('ready', onReady);
      redis.once('reconnecting', onRetry);
    });
  } finally {
    clearTimeout(timer);
    redis.off('error', onError);
    if (onReady) redis.off('ready', onReady);
    if (onRetry) redis.off('reconnecting', onRetry);
  }
}
