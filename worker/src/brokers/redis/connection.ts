import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import { BrokerUnavailableError, ConfigError } from '../../errors.ts';
import type { Deadline } from '../deadline.ts';

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

/** Why each connection last failed to reach Redis, for the errors that say a call could not. */
const lastErrors = new WeakMap<Redis, Error>();

/**
 * Every Redis client Taskfleet opens, and every duplicate of one (a blocking reader, a subscriber):
 * ioredis' own duplicate() copies the options but not the listeners, and a client without an 'error'
 * listener prints `[ioredis] Unhandled error event` and a stack to stderr at each failed reconnect,
 * so a worker's or a producer's output would stop being JSON lines. Connection errors reach callers
 * as failed (or waiting) commands and the worker's readiness; the listener keeps the last, for messages.
 */
class Connection extends Redis {
  constructor(url: string | undefined, options: RedisOptions) {
    // ioredis reads the URL and the options alike; a duplicate has its URL's parts in its options.
    super(url as string, options);
    this.on('error', (error: Error) => lastErrors.set(this, error));
    this.on('ready', () => lastErrors.delete(this));
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    return new Connection(undefined, { ...this.options, ...override });
  }
}

/**
 * A connection that queues commands while Redis is away and replays them when it is back, instead of
 * failing them after a fixed number of attempts: a worker outlives a Redis restart. Producers use
 * PRODUCER_CONNECTION instead, which never holds a command back to send it later.
 */
export function connect(url: string, options: RedisOptions = {}): Redis {
  assertRedisUrl(url);
  return new Connection(url, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2000),
    lazyConnect: false,
    ...options,
  });
}

/** Why a connection is not ready, in words: its last error since it was, or what it is doing. */
export function notReadyReason(redis: Redis): string {
  if (redis.status === 'end') return 'the connection is closed';
  const error = lastErrors.get(redis);
  if (error) return error.message;
  // A listener that accepts connections and never answers (a wrong port, a firewall that eats packets).
  return redis.status === 'connect' ? 'connected, but it does not answer' : 'not connected yet';
}

/**
 * A producer's connection (TaskfleetOptions.brokerTimeout): it refuses to queue a command while Redis
 * is away, and fails the commands it had sent when the connection drops instead of sending them again
 * on reconnect. A call that gave up at its deadline can then never be sent behind its caller's back
 * once Redis is back. It reconnects in the background all the same; calls wait for it (untilReady),
 * within their deadline.
 */
export const PRODUCER_CONNECTION: RedisOptions = {
  connectionName: 'taskfleet-producer',
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
};

/** Resolves true once the connection is ready for commands; false if it ends first, or `signal` aborts. */
export function untilReady(redis: Redis, signal?: AbortSignal): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  if (redis.status === 'end' || signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      redis.off('ready', onReady);
      redis.off('end', onEnd);
      signal?.removeEventListener('abort', onEnd);
      resolve(ready);
    };
    const onReady = () => done(true);
    const onEnd = () => done(false);
    redis.on('ready', onReady);
    redis.on('end', onEnd);
    signal?.addEventListener('abort', onEnd, { once: true });
  });
}

/** ioredis' refusal of a command it did not write: the connection was not up (PRODUCER_CONNECTION). */
const NOT_WRITTEN = /Stream isn't writeable/;
/** ioredis' failure of a command it had written, when the connection dropped or was closed. */
const LOST = /max retries per request|aborted due to connection close|Connection is closed/i;

/**
 * Sends a producer call's commands (`send`, which must make them afresh each time it is called) on a
 * PRODUCER_CONNECTION within its deadline: waits for the connection, sends, and waits for the answer.
 * It gives up with a BrokerUnavailableError when the time is up or the connection drops, saying
 * whether the commands had been sent. Errors Redis itself answers (a wrong type, out of memory) and
 * any other error are thrown as they are. Without a deadline (the worker's own calls, on connections
 * that wait for Redis) it only sends.
 */
export async function sendWithin<T>(redis: Redis, deadline: Deadline | undefined, send: () => Promise<T>): Promise<T> {
  if (!deadline) return send();
  for (;;) {
    if (redis.status !== 'ready' && !(await untilReady(redis, deadline.signal))) {
      throw deadline.unavailable({ maybeSent: false, timedOut: deadline.passed }, notReadyReason(redis));
    }
    try {
      return await deadline.race(send(), () => deadline.unavailable({ maybeSent: true, timedOut: true }));
    } catch (error) {
      if (error instanceof BrokerUnavailableError || error instanceof ReplyError) throw error;
      const message = error instanceof Error ? error.message : String(error);
      if (NOT_WRITTEN.test(message)) {
        // Refused before anything was written (the connection dropped since it was ready): safe to wait
        // again. Its status may still say ready until the socket's close is handled: let that happen.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      if (!LOST.test(message)) throw error;
      const reason = lastErrors.get(redis)?.message ?? 'the connection closed';
      throw deadline.unavailable({ maybeSent: true, timedOut: false }, reason, error);
    }
  }
}

const scripts = {
  // Called with the number of keys first: the queue's seven, then one per result in the batch.
  settle: { numberOfKeys: undefined },
  read: { numberOfKeys: 3 },
  requeue: { numberOfKeys: 5 },
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
