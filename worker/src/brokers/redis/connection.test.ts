import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect, PRODUCER_CONNECTION } from './connection.ts';

test('every client connect() makes, and every duplicate of one (of a duplicate too), has an error listener', () => {
  // lazyConnect: nothing here connects, and the duplicates inherit it.
  const redis = connect('redis://127.0.0.1:1/0', { lazyConnect: true });
  const subscriber = redis.duplicate({ enableReadyCheck: false });
  const reader = subscriber.duplicate();
  try {
    for (const client of [redis, subscriber, reader]) {
      assert.ok(client.listenerCount('error') >= 1, 'an error listener');
      // Handled: an unhandled 'error' event would throw here (ioredis would print it instead).
      assert.doesNotThrow(() => client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:1')));
    }
  } finally {
    for (const client of [redis, subscriber, reader]) client.disconnect();
  }
});

test("a producer's connection and its duplicates never queue a command offline nor resend one", () => {
  const redis = connect('redis://127.0.0.1:1/0', { lazyConnect: true, ...PRODUCER_CONNECTION });
  const subscriber = redis.duplicate({ enableReadyCheck: false });
  try {
    for (const client of [redis, subscriber]) {
      assert.equal(client.options.enableOfflineQueue, false);
      assert.equal(client.options.maxRetriesPerRequest, 0);
      assert.equal(client.options.autoResendUnfulfilledCommands, false);
    }
  } finally {
    redis.disconnect();
    subscriber.disconnect();
  }
});

test('no module of the SDK, worker or CLI makes a Redis client but through connect()', () => {
  const src = fileURLToPath(new URL('../..', import.meta.url));
  const files = (readdirSync(src, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(src, f));
  const offenders = files
    .filter((file) => !file.endsWith(join('brokers', 'redis', 'connection.ts')))
    .filter((file) => /new\s+(Redis|IORedis|Cluster)\s*\(|\.createClient\s*\(/.test(readFileSync(file, 'utf8')))
    .map((file) => relative(src, file));
  assert.ok(files.length > 50, `read ${files.length} modules`);
  assert.deepEqual(offenders, []);
});
