import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger, LazyChild, type Logger } from './logger.ts';

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

test("a lazy child makes its child only when it writes, and writes with its fields at its parent's level", () => {
  const lines: string[] = [];
  const parent = createLogger('info', { worker: 'w1' }, (line) => lines.push(line));
  let made = 0;
  const counting: Logger = {
    ...parent,
    child(fields) {
      made++;
      return parent.child(fields);
    },
  };
  const log = new LazyChild(counting, { taskId: 't1' });
  log.debug('below info: skipped');
  assert.equal(made, 0, 'a call that does not log makes no child');
  assert.deepEqual(lines, []);
  log.info('one');
  log.warn('two', { n: 2 });
  assert.equal(made, 1, 'made once, on the first line written');
  assert.deepEqual(
    lines.map((line) => {
      const { worker, taskId, level, msg, n } = JSON.parse(line);
      return { worker, taskId, level, msg, n };
    }),
    [
      { worker: 'w1', taskId: 't1', level: 'info', msg: 'one', n: undefined },
      { worker: 'w1', taskId: 't1', level: 'warn', msg: 'two', n: 2 },
    ],
  );
  assert.equal(log.level, 'info');
});
