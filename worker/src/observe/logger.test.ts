import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from './logger.ts';

test('every string of a line, error messages included, is redacted: URL passwords and password= values', () => {
  const lines: string[] = [];
  const log = createLogger('info', { broker: 'redis://app:s3cret@redis:6379/0' }, (line) => lines.push(line));
  log.error('could not connect to redis://:s3cret@redis?password=s3cret', {
    error: new Error('AUTH failed for redis://app:s3cret@redis:6379 (password=s3cret)'),
    nested: { url: 'rediss://u:s3cret@h/0?token=s3cret&db=1' },
    count: 3,
  });
  const [line] = lines;
  assert.doesNotMatch(line ?? '', /s3cret/);
  const record = JSON.parse(line ?? '{}');
  assert.equal(record.broker, 'redis://app:***@redis:6379/0');
  assert.equal(record.msg, 'could not connect to redis://:***@redis?password=***');
  assert.equal(record.error.message, 'AUTH failed for redis://app:***@redis:6379 (password=***)');
  assert.equal(record.nested.url, 'rediss://u:***@h/0?token=***&db=1');
  assert.equal(record.count, 3);
});
