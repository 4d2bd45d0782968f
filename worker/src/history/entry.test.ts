import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { createEnvelope } from '../message/envelope.ts';
import { DEFAULT_HISTORY, type HistoryEntry, historyJson, resolveHistory } from './entry.ts';

const envelope = (args: unknown[]) => createEnvelope({ task: 'report', args, queue: 'default', now: 1_000 });
const outcome = { state: 'SUCCESS' as const, startedAt: 1_100, finishedAt: 1_200 };

test('an entry that fits keeps the call as it was given and how it ended', () => {
  const call = envelope([1, 'two']);
  const entry = JSON.parse(historyJson(call, { ...outcome, result: { ok: true } }, 'w-1', 4096)) as HistoryEntry;
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

test('an entry over maxEntryBytes leaves out the result, then kwargs, then args, and records their sizes', () => {
  const call = envelope(['é'.repeat(300)]);
  const result = 'r'.repeat(2000);
  const withoutResult = JSON.parse(historyJson(call, { ...outcome, result }, 'w-1', 1024)) as HistoryEntry;
  assert.equal(withoutResult.result, undefined);
  assert.deepEqual(withoutResult.omitted, { result: 2002 });
  assert.deepEqual(withoutResult.args, ['é'.repeat(300)]);

  const json = historyJson(call, { ...outcome, result }, 'w-1', 512);
  const bare = JSON.parse(json) as HistoryEntry;
  assert.deepEqual(bare.omitted, { result: 2002, kwargs: 2, args: 604 }, 'args in bytes: é is two');
  assert.equal(bare.args, undefined);
  assert.ok(Buffer.byteLength(json) <= 512);
});

test("an error's stack, then its message, are cut to fit, never past the bound", () => {
  const error = { name: 'Error', message: 'm'.repeat(3000), stack: `Error\n${'at x (file.ts:1:1)\n'.repeat(400)}` };
  for (const max of [512, 1024, 4096]) {
    const json = historyJson(envelope([]), { ...outcome, state: 'FAILURE', error }, 'w-1', max);
    assert.ok(Buffer.byteLength(json) <= max, `${Buffer.byteLength(json)} ≤ ${max}`);
    const entry = JSON.parse(json) as HistoryEntry;
    assert.equal(entry.omitted?.stack, error.stack.length);
    assert.ok(error.stack.startsWith(entry.error?.stack ?? '\u0000'), 'the stack kept is its beginning');
  }
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
