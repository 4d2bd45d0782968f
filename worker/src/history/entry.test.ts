import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { createEnvelope } from '../message/envelope.ts';
import { fitsIn } from '../message/json.ts';
import { DEFAULT_HISTORY, entryFrom, type HistoryOutcome, outcomeJson, resolveHistory } from './entry.ts';

const call = createEnvelope({ task: 'report', args: [1, 'two'], queue: 'default', now: 1_000 });
const outcome = (more: Partial<HistoryOutcome> = {}): HistoryOutcome => ({
  id: call.id,
  task: 'report',
  state: 'SUCCESS',
  attempts: 1,
  queue: 'default',
  worker: 'w-1',
  rootId: call.rootId,
  startedAt: 1_100,
  finishedAt: 1_200,
  ...more,
});

test('an entry reads the call from the message it ran and how it ended from its outcome', () => {
  const entry = entryFrom([
    'i',
    call.id,
    'o',
    outcomeJson(outcome({ result: { ok: true } }), 4096),
    'm',
    JSON.stringify(call),
  ]);
  assert.deepEqual(entry, {
    id: call.id,
    task: 'report',
    state: 'SUCCESS',
    queue: 'default',
    worker: 'w-1',
    attempt: 1,
    createdAt: 1_000,
    startedAt: 1_100,
    finishedAt: 1_200,
    args: [1, 'two'],
    kwargs: {},
    priority: call.priority,
    result: { ok: true },
    rootId: call.rootId,
  });
});

test('an entry whose message was left out has its size instead of the arguments', () => {
  const entry = entryFrom(['i', call.id, 'o', outcomeJson(outcome(), 4096), 'ms', '5000']);
  assert.equal(entry?.args, undefined);
  assert.deepEqual(entry?.omitted, { message: 5000 });
});

test('an outcome over maxEntryBytes leaves out its result (its size kept), then cuts the stack and the message', () => {
  const big = JSON.parse(outcomeJson(outcome({ result: 'é'.repeat(1000) }), 1024)) as HistoryOutcome;
  assert.equal(big.result, undefined);
  assert.deepEqual(big.omitted, { result: 2002 }, 'bytes: é is two');
  const error = { name: 'Error', message: 'm'.repeat(3000), stack: `Error\n${'at x (file.ts:1:1)\n'.repeat(400)}` };
  for (const max of [512, 1024, 4096]) {
    const json = outcomeJson(outcome({ state: 'FAILURE', error }), max);
    assert.ok(Buffer.byteLength(json) <= max, `${Buffer.byteLength(json)} ≤ ${max}`);
    const cut = JSON.parse(json) as HistoryOutcome;
    assert.equal(cut.omitted?.stack, error.stack.length);
    assert.ok(error.stack.startsWith(cut.error?.stack ?? '\u0000'), 'the stack kept is its beginning');
  }
});

test('a result JSON cannot write (nested deeper than JSON.stringify goes) is left out, never thrown', () => {
  const deep = JSON.parse(`${'['.repeat(20_000)}1${']'.repeat(20_000)}`);
  const json = outcomeJson(outcome({ result: deep }), 4096);
  assert.deepEqual((JSON.parse(json) as HistoryOutcome).omitted, { result: null });
});

test('fitsIn counts bytes, not characters, when the quick bound is not enough', () => {
  assert.equal(fitsIn(10, 'abc', 'de'), true);
  assert.equal(fitsIn(10, 'é'.repeat(5)), true, '10 bytes');
  assert.equal(fitsIn(10, 'é'.repeat(6)), false, '12 bytes');
});

test('the history is off by default, on with true, bounds or TASKFLEET_HISTORY=on, and its bounds come from the option over the environment', () => {
  assert.equal(resolveHistory(undefined, {}), undefined);
  assert.equal(resolveHistory(undefined, { TASKFLEET_HISTORY: 'off' }), undefined);
  assert.deepEqual(resolveHistory(undefined, { TASKFLEET_HISTORY: 'on' }), DEFAULT_HISTORY);
  assert.deepEqual(resolveHistory(true, {}), DEFAULT_HISTORY);
  assert.equal(resolveHistory(false, { TASKFLEET_HISTORY: 'on' }), undefined, 'false wins over the environment');
  assert.deepEqual(
    resolveHistory({ maxEntries: 5 }, { TASKFLEET_HISTORY_MAX_ENTRIES: '9', TASKFLEET_HISTORY_MAX_AGE: '60000' }),
    { ...DEFAULT_HISTORY, maxEntries: 5, maxAgeMs: 60_000 },
  );
  assert.throws(
    () => resolveHistory(undefined, { TASKFLEET_HISTORY: 'yes' }),
    /TASKFLEET_HISTORY must be on or off, not "yes"/,
  );
  assert.throws(
    () => resolveHistory(true, { TASKFLEET_HISTORY_MAX_ENTRIES: 'lots' }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /history\.maxEntries must be a whole number ≥ 1, not NaN \(from TASKFLEET_HISTORY_MAX_ENTRIES\)/.test(e.message),
  );
  assert.throws(
    () => resolveHistory({ maxEntryBytes: 100 }, {}),
    /history\.maxEntryBytes must be at least 512, not 100/,
  );
});
