import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ConfigError,
  MAX_ERROR_CHARS,
  recordError,
  SerializationError,
  TaskfleetError,
  WorkflowError,
} from '../errors.ts';
import { InvalidMessageError } from '../message/envelope.ts';
import { isPermanent } from './permanent.ts';

test('input or configuration that is wrong is permanent; an unreachable broker or a plain error is not', () => {
  assert.equal(isPermanent(new InvalidMessageError('too-large', 'x')), true);
  assert.equal(isPermanent(new ConfigError('bad queue')), true);
  assert.equal(isPermanent(new SerializationError('not JSON')), true);
  assert.equal(isPermanent(new TaskfleetError('BAD_ENVELOPE', 'x')), true);
  assert.equal(isPermanent(new TaskfleetError('CHORD_SLOT_INVALID', 'x')), true);
  assert.equal(isPermanent(new WorkflowError('success', new InvalidMessageError('too-large', 'x'))), true);
  // kafkajs: the broker's refusal, as thrown and as wrapped once the retries are spent.
  const tooLarge = Object.assign(new Error('The request included a message larger than the max'), {
    type: 'MESSAGE_TOO_LARGE',
  });
  assert.equal(isPermanent(tooLarge), true);
  assert.equal(isPermanent(new Error('retries exhausted', { cause: tooLarge })), true);

  assert.equal(isPermanent(new TaskfleetError('UNREACHABLE', 'x')), false);
  assert.equal(isPermanent(new Error('Connection is closed.')), false);
  assert.equal(isPermanent(Object.assign(new Error('OOM command not allowed'), { name: 'ReplyError' })), false);
  assert.equal(isPermanent(undefined), false);
  assert.equal(isPermanent('a string'), false);
});

test('an error is recorded bounded, whatever a handler throws', () => {
  const recorded = recordError(Object.assign(new Error('m'.repeat(100_000)), { code: 'C'.repeat(1000) }));
  assert.equal(recorded.message.length, MAX_ERROR_CHARS);
  assert.ok(recorded.message.endsWith('…'));
  assert.equal(recorded.code?.length, 200);
  assert.ok((recorded.stack?.length ?? 0) <= 2 * MAX_ERROR_CHARS);
  assert.equal(recordError('s'.repeat(100_000)).message.length, MAX_ERROR_CHARS);
});
