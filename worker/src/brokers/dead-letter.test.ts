import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { boundedDetail, DEAD_LETTER_HEAD_BYTES, deadLetterCopy, MAX_DETAIL_CHARS } from './dead-letter.ts';

test('a message that can never run is kept as its head, size and SHA-256; one that may run again whole', () => {
  const raw = `{"v":1,"args":["${'€'.repeat(3000)}"]}`;
  const size = Buffer.byteLength(raw);
  for (const reason of ['too-large', 'malformed'] as const) {
    const copy = deadLetterCopy(raw, reason);
    assert.equal(copy.size, size);
    assert.equal(copy.sha256, createHash('sha256').update(raw).digest('hex'));
    assert.ok(Buffer.byteLength(copy.text) <= DEAD_LETTER_HEAD_BYTES);
    assert.ok(Buffer.byteLength(copy.text) > DEAD_LETTER_HEAD_BYTES - 3, 'cut only at a character boundary');
    assert.ok(raw.startsWith(copy.text));
  }
  for (const reason of ['unknown-task', 'poison', 'unsupported-version', 'unrecordable'] as const) {
    assert.deepEqual(deadLetterCopy(raw, reason), { text: raw, size });
  }
  assert.deepEqual(deadLetterCopy('short', 'too-large'), { text: 'short', size: 5 });
});

test('a detail is at most MAX_DETAIL_CHARS', () => {
  assert.equal(boundedDetail('x'.repeat(10_000)).length, MAX_DETAIL_CHARS);
  assert.equal(boundedDetail('fine'), 'fine');
});
