import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError } from '../../errors.ts';

export type { Redis };

/** Refuses what ioredis would misread: only redis:// and rediss:// URLs. */
export function assertRedisUrl(url: string, what = 'the Redis URL'): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${what} ${JSON.stringify(url)} is not a URL: expected redis://host:port/db`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new ConfigError(`${what} ${JSON.stringify(url)} is not a Redis URL: expected redis:// or rediss://`);
  }
}

/**
 * A connection that queues commands while Redis is away and replays them when it is back, instead of
 * failing them after a fixed number of attempts: a worker outlives a Redis restart.
 */
export function connect(url: string, options: RedisOptions = {}): Redis {
  assertRedisUrl(url);
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    lazyConnect: false,
    ...options,
  });
  // Connection errors reach callers as failed commands (and the worker's readiness); without a
  // listener, ioredis would also print each reconnect attempt's error to stderr.
  redis.on('error', () => {});
  return redis;
}

const scripts = {
  ack: { numberOfKeys: 1 },
  requeue: { numberOfKeys: 5 },
  deadLetter: { numberOfKeys: 2, file: 'dead-letter' },
  promoteDelayed: { numberOfKeys: 4, file: 'promote-delayed' },
  recover: { numberOfKeys: 1 },
  extend: { numberOfKeys: 1 },
  purgeLane: { numberOfKeys: 1, file: 'purge-lane' },
  rateLimit: { numberOfKeys: 1, file: 'rate-limit' },
  // Called with the number of keys first: one per result in the batch.
  storeResults: { numberOfKeys: undefined, file: 'store-results' },
  // Periodic tasks (schedule/): the idempotent fire, and the lease that picks the beat that fires.
  fireSchedule: { numberOfKeys: 5, file: 'fire-schedule' },
  advanceSchedule: { numberOfKeys: 2, file: 'advance-schedule' },
  leaseAcquire: { numberOfKeys: 2, file: 'lease-acquire' },
  leaseRenew: { numberOfKeys: 1, file: 'lease-renew' },
  leaseRelease: { numberOfKeys: 1, file: 'lease-release' },
  // Chords (canvas): opened once, completed by the member that fills the last slot.
  openChord: { numberOfKeys: 1, file: 'open-chord' },
  completeChordMember: { numberOfKeys: 5, file: 'complete-chord-member' },
} as const;

export type ScriptName = keyof typeof scripts;

/** The Lua scripts in ./scripts, registered once per connection and called by SHA. */
export function withScripts(redis: Redis): Redis & Scripts {
  for (const [name, { numberOfKeys, ...rest }] of Object.entries(scripts)) {
    const file = 'file' in rest ? rest.file : name;
    const lua = readFileSync(new URL(`scripts/${file}.lua`, import.meta.url), 'utf8');
    redis.defineCommand(name, { numberOfKeys, lua });
  }
  return redis as Redis & Scripts;
}

type Call = (...args: (string | number)[]) => Promise<unknown>;
export type Scripts = Record<ScriptName, Call>;
