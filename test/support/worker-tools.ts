/**
 * Tools for the worker's integration tests: reach an app's Redis directly (to look at its keys or
 * to write what no SDK call would), open gates that handlers wait on, read a worker's probes and
 * metrics, and run a Redis of one's own that a test may stop, restart or reconfigure.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { Taskfleet, Worker } from 'taskfleet';
import { RedisBroker } from '../../worker/src/brokers/redis/broker.ts';
import type { Redis } from '../../worker/src/brokers/redis/connection.ts';
import { appKeys, type QueueKeys, queueKeys } from '../../worker/src/brokers/redis/keys.ts';
import { createLogger, type Logger } from '../../worker/src/observe/logger.ts';
import type { Service } from '../stack/process.ts';
import { type RedisEndpoint, startRedis } from '../stack/redis.ts';

/** The app's broker connection, for commands the SDK does not offer. */
export function redisOf(app: Taskfleet): Redis {
  const broker = app.broker;
  if (!(broker instanceof RedisBroker)) throw new Error('this test needs the Redis broker');
  return broker.redis;
}

/** The keys of the app's default queue (or of `queue`). */
export function keysOf(app: Taskfleet, queue = app.defaultQueue): QueueKeys {
  return queueKeys(app.prefix, queue);
}

export function appKeysOf(app: Taskfleet) {
  return appKeys(app.prefix);
}

/** A gate a handler waits on until the test opens it. */
export function gate(): { opened: Promise<void>; open: () => void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { opened: promise, open: () => resolve() };
}

/** GET a path of a worker's observability server: status and body. */
export async function probe(worker: Worker, path: string): Promise<{ status: number; body: string }> {
  const base = worker.metricsAddress;
  if (!base) throw new Error('the worker serves no metrics: start it with metricsPort');
  const response = await fetch(`${base}${path}`);
  return { status: response.status, body: await response.text() };
}

/** The value of one sample in Prometheus text, or undefined if it is absent. */
export function sample(metrics: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of metrics.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => present[k] === v)) return Number(match[3]);
  }
  return undefined;
}

/** A logger that keeps its lines, for tests of what a person running the worker reads. */
export function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    logger: createLogger('debug', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    lines,
  };
}

export interface PrivateRedis {
  readonly endpoint: RedisEndpoint;
  /** Stops the server (SIGTERM; nothing is persisted, so a restart starts empty). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
}

/**
 * A redis-server of this test's own, for what would disturb other tests on the shared one: a
 * restart, a CONFIG SET, CLIENT KILL. Stopped and removed when the test file ends. With `persist`,
 * a stop (SIGTERM) and start keeps the data.
 */
export async function privateRedis({ persist = false }: { persist?: boolean } = {}): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'taskfleet-redis-'));
  let { endpoint, services } = await startRedis(dir, undefined, { persist });
  let service: Service | undefined = services[0];
  const stop = async () => {
    await service?.stop(5000);
    service = undefined;
  };
  after(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    get endpoint() {
      return endpoint;
    },
    stop,
    async start() {
      ({ endpoint, services } = await startRedis(dir, endpoint.port, { persist }));
      service = services[0];
    },
  };
}
