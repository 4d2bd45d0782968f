import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { useRedis } from '../../support/stack.ts';

let redis: Redis;
before(async () => {
  redis = new Redis((await useRedis()).url);
});
after(() => redis.disconnect());

test('the stack runs a real Redis 7', async () => {
  const info = await redis.info('server');
  const version = /redis_version:(\d+)\./.exec(info)?.[1];
  assert.ok(Number(version) >= 7, `redis_version ${version}`);
});

test('streams round trip: XADD, XREADGROUP, XACK, and XINFO GROUPS lag', async () => {
  const stream = `smoke:${randomUUID()}`;
  await redis.xgroup('CREATE', stream, 'workers', '0', 'MKSTREAM');
  for (let i = 0; i < 5; i++) await redis.xadd(stream, '*', 'n', String(i));

  const lagOf = async () => {
    const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
    const fields = groups[0] as unknown[];
    return fields[fields.indexOf('lag') + 1];
  };
  assert.equal(await lagOf(), 5);

  const read = (await redis.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', 3, 'STREAMS', stream, '>')) as [
    string,
    [string, string[]][],
  ][];
  const entries = read[0]?.[1] ?? [];
  assert.deepEqual(
    entries.map(([, fields]) => fields[1]),
    ['0', '1', '2'],
  );
  assert.equal(await lagOf(), 2);
  assert.equal(await redis.xack(stream, 'workers', ...entries.map(([id]) => id)), 3);
  const pending = (await redis.xpending(stream, 'workers')) as [number, ...unknown[]];
  assert.equal(pending[0], 0);
  await redis.del(stream);
});
