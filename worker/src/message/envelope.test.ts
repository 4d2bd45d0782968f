import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SerializationError, TaskfleetError } from '../errors.ts';
import {
  createEnvelope,
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeEnvelope,
  ENVELOPE_VERSION,
  encodeEnvelope,
  InvalidMessageError,
  priorityLane,
} from './envelope.ts';

const base = { task: 'send_email', args: ['a@example.com', { retries: 2 }], queue: 'mail' };

/** Asserts that `fn` throws InvalidMessageError with `reason` and a message matching `message`. */
function assertInvalid(fn: () => unknown, reason: InvalidMessageError['reason'], message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidMessageError, `not an InvalidMessageError: ${error}`);
    assert.equal(error.reason, reason);
    assert.equal(error.code, `INVALID_MESSAGE_${reason.toUpperCase().replaceAll('-', '_')}`);
    assert.match(error.message, message);
    return true;
  });
}

describe('createEnvelope', () => {
  test('fills in the defaults: version, a UUID that is also the root, attempt 1, priority 5, now', () => {
    const before = Date.now();
    const e = createEnvelope(base);
    assert.equal(e.v, ENVELOPE_VERSION);
    assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(e.rootId, e.id);
    assert.deepEqual(
      { task: e.task, args: e.args, kwargs: e.kwargs, queue: e.queue, attempt: e.attempt, priority: e.priority },
      {
        task: 'send_email',
        args: ['a@example.com', { retries: 2 }],
        kwargs: {},
        queue: 'mail',
        attempt: 1,
        priority: 5,
      },
    );
    assert.deepEqual(e.headers, {});
    assert.ok(e.createdAt >= before && e.createdAt <= Date.now());
    assert.notEqual(createEnvelope(base).id, e.id);
  });

  test('leaves unset options out, so the JSON carries no undefined', () => {
    const e = createEnvelope({ ...base, chain: [] });
    for (const key of ['maxRetries', 'eta', 'expires', 'parentId', 'groupId', 'chain'])
      assert.equal(key in e, false, key);
  });

  test('carries every option given', () => {
    const chain = [{ task: 'next', args: [1] }];
    const e = createEnvelope({
      ...base,
      id: 'id-1',
      eta: 1000,
      expires: 2000,
      priority: 0,
      maxRetries: 3,
      parentId: 'parent',
      rootId: 'root',
      groupId: 'group',
      chain,
      headers: { trace: 't-1' },
      now: 42,
    });
    assert.deepEqual(e, {
      v: 1,
      id: 'id-1',
      task: 'send_email',
      args: ['a@example.com', { retries: 2 }],
      kwargs: {},
      queue: 'mail',
      attempt: 1,
      maxRetries: 3,
      eta: 1000,
      expires: 2000,
      priority: 0,
      parentId: 'parent',
      rootId: 'root',
      groupId: 'group',
      chain,
      createdAt: 42,
      headers: { trace: 't-1' },
    });
  });

  test('refuses an argument that is not JSON, naming the argument and the task', () => {
    assert.throws(
      () => createEnvelope({ ...base, args: ['ok', { when: new Date() }] }),
      (error: unknown) =>
        error instanceof SerializationError && /^argument 2 of send_email\.when cannot be sent/.test(error.message),
    );
    assert.throws(() => createEnvelope({ ...base, args: [undefined] }), /argument 1 of send_email cannot be sent/);
  });

  test('refuses headers that are not JSON', () => {
    assert.throws(
      () => createEnvelope({ ...base, headers: { n: 1n } as unknown as Record<string, string> }),
      /headers\.n cannot be sent/,
    );
  });

  test('accepts priorities 0 to 9 and refuses anything else', () => {
    for (const priority of [0, 1, 5, 9]) assert.equal(createEnvelope({ ...base, priority }).priority, priority);
    for (const priority of [-1, 10, 2.5, Number.NaN]) {
      assert.throws(
        () => createEnvelope({ ...base, priority }),
        (error: unknown) =>
          error instanceof TaskfleetError &&
          error.code === 'BAD_PRIORITY' &&
          error.message === `priority must be an integer from 0 (most urgent) to 9, not ${priority}`,
      );
    }
  });

  test('refuses what a worker would dead-letter, at enqueue, naming the field', () => {
    const cases: [Partial<Parameters<typeof createEnvelope>[0]>, RegExp][] = [
      [{ task: '' }, /task must be a non-empty string/],
      [{ queue: '' }, /queue must be a queue name/],
      [{ queue: 'a/../b' }, /queue must be a queue name/],
      [{ id: '' }, /id must be a non-empty string/],
      [{ rootId: '' }, /rootId must be a non-empty string/],
      [{ parentId: '' }, /parentId must be a non-empty string/],
      [{ groupId: '' }, /groupId must be a non-empty string/],
      [{ maxRetries: 1.5 }, /maxRetries must be an integer ≥ 0/],
      [{ maxRetries: -1 }, /maxRetries must be an integer ≥ 0/],
      // An invalid Date turned into a number: JSON would carry it as null.
      [{ eta: Number.NaN }, /eta must be a timestamp in ms/],
      [{ expires: Number.POSITIVE_INFINITY }, /expires must be a timestamp in ms/],
      [{ now: Number.NaN }, /createdAt must be a timestamp in ms/],
    ];
    for (const [input, message] of cases) {
      assert.throws(
        () => createEnvelope({ ...base, ...input }),
        (error: unknown) => {
          assert.ok(error instanceof TaskfleetError, String(error));
          assert.equal(error.code, 'BAD_ENVELOPE');
          assert.match(error.message, /^task .* cannot be enqueued: /);
          assert.match(error.message, message);
          return true;
        },
        JSON.stringify(input),
      );
    }
  });

  test('whatever it builds, a worker decodes back unchanged', () => {
    for (const input of [
      base,
      { ...base, args: [], priority: 9, maxRetries: 0, eta: 1, expires: 2, parentId: 'p', groupId: 'g' },
      { ...base, chain: [{ id: 'c', task: 'next', args: [null], queue: 'q', options: { priority: 1 } }] },
    ]) {
      const e = createEnvelope(input);
      assert.deepEqual(decodeEnvelope(encodeEnvelope(e)), e);
    }
  });
});

describe('priorityLane', () => {
  test('0–2 urgent, 3–6 normal, 7–9 low', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(priorityLane), [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]);
  });
});

describe('encodeEnvelope', () => {
  test('is the JSON of the envelope', () => {
    const e = createEnvelope(base);
    assert.equal(encodeEnvelope(e), JSON.stringify(e));
  });

  test('refuses a message over the limit, in bytes, saying what to do instead', () => {
    const e = createEnvelope({ ...base, args: ['x'.repeat(200)] });
    const bytes = Buffer.byteLength(JSON.stringify(e));
    assert.equal(encodeEnvelope(e, bytes), JSON.stringify(e));
    assertInvalid(
      () => encodeEnvelope(e, bytes - 1),
      'too-large',
      new RegExp(`^task send_email is ${bytes} bytes, over the ${bytes - 1}-byte limit: pass a reference`),
    );
  });

  test('counts bytes, not characters', () => {
    // 100 euro signs: 100 characters, 300 bytes.
    const e = createEnvelope({ ...base, args: ['€'.repeat(100)] });
    const text = JSON.stringify(e);
    assert.ok(text.length < Buffer.byteLength(text));
    assertInvalid(() => encodeEnvelope(e, text.length + 10), 'too-large', /bytes, over the/);
  });

  test('the default limit is 1 MiB', () => {
    assert.equal(DEFAULT_MAX_MESSAGE_BYTES, 1024 * 1024);
    const big = createEnvelope({ ...base, args: ['x'.repeat(DEFAULT_MAX_MESSAGE_BYTES)] });
    assertInvalid(() => encodeEnvelope(big), 'too-large', /over the 1048576-byte limit/);
    const fits = createEnvelope({ ...base, args: ['x'.repeat(DEFAULT_MAX_MESSAGE_BYTES - 1000)] });
    assert.ok(encodeEnvelope(fits).length > DEFAULT_MAX_MESSAGE_BYTES - 1000);
  });
});

describe('decodeEnvelope', () => {
  const valid = (): Record<string, unknown> => JSON.parse(JSON.stringify(createEnvelope(base)));
  const decodeWith = (changes: Record<string, unknown>) => () =>
    decodeEnvelope(JSON.stringify({ ...valid(), ...changes }));

  test('returns a valid envelope as sent', () => {
    const e = createEnvelope({ ...base, eta: 5, expires: 6, maxRetries: 2, parentId: 'p', groupId: 'g' });
    assert.deepEqual(decodeEnvelope(JSON.stringify(e)), e);
  });

  test('text that is not JSON is malformed', () => {
    assertInvalid(() => decodeEnvelope('{"v":1,'), 'malformed', /^the message is not JSON: /);
    assertInvalid(() => decodeEnvelope(''), 'malformed', /^the message is not JSON: /);
  });

  test('JSON that is not an object is malformed', () => {
    for (const text of ['[]', 'null', '42', '"envelope"', 'true'])
      assertInvalid(() => decodeEnvelope(text), 'malformed', /^the message is not a JSON object$/);
  });

  test('a version number other than this one is unsupported, whatever else the message holds', () => {
    for (const v of [2, 99]) {
      assertInvalid(
        decodeWith({ v }),
        'unsupported-version',
        new RegExp(`^envelope version ${v} is not supported by this worker \\(it reads version 1\\)$`),
      );
    }
    assertInvalid(() => decodeEnvelope('{"v":2,"id":7}'), 'unsupported-version', /version 2/);
  });

  test('a missing version, or one that is not a version number, is malformed, with the other fields', () => {
    for (const v of [undefined, 0, -1, 1.5, '1', null]) {
      assertInvalid(
        decodeWith({ v }),
        'malformed',
        /^invalid envelope: v must be the envelope version, an integer \(this worker reads 1\)$/,
      );
    }
    assertInvalid(
      () => decodeEnvelope('{}'),
      'malformed',
      /^invalid envelope: v must be the envelope version, an integer \(this worker reads 1\); id must be a non-empty string; task must be/,
    );
  });

  test('checks every field, naming it', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ id: '' }, 'id must be a non-empty string'],
      [{ id: 7 }, 'id must be a non-empty string'],
      [{ id: undefined }, 'id must be a non-empty string'],
      [{ task: '' }, 'task must be a non-empty string'],
      [{ task: ['t'] }, 'task must be a non-empty string'],
      [{ args: { 0: 'a' } }, 'args must be an array'],
      [{ args: undefined }, 'args must be an array'],
      [{ kwargs: [] }, 'kwargs must be an object'],
      [{ kwargs: null }, 'kwargs must be an object'],
      [
        { queue: '' },
        "queue must be a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
      ],
      [
        { queue: 'team a' },
        "queue must be a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
      ],
      [{ attempt: 0 }, 'attempt must be an integer ≥ 1'],
      [{ attempt: 1.5 }, 'attempt must be an integer ≥ 1'],
      [{ attempt: '1' }, 'attempt must be an integer ≥ 1'],
      [{ maxRetries: 1.5 }, 'maxRetries must be an integer ≥ 0'],
      [{ maxRetries: -1 }, 'maxRetries must be an integer ≥ 0'],
      [{ maxRetries: null }, 'maxRetries must be an integer ≥ 0'],
      [{ eta: '2030-01-01' }, 'eta must be a timestamp in ms'],
      [{ eta: null }, 'eta must be a timestamp in ms'],
      [{ expires: '1' }, 'expires must be a timestamp in ms'],
      [{ priority: -1 }, 'priority must be 0–9'],
      [{ priority: 10 }, 'priority must be 0–9'],
      [{ priority: 4.5 }, 'priority must be 0–9'],
      [{ priority: undefined }, 'priority must be 0–9'],
      [{ parentId: 3 }, 'parentId must be a non-empty string'],
      [{ rootId: '' }, 'rootId must be a non-empty string'],
      [{ groupId: {} }, 'groupId must be a non-empty string'],
      [{ chain: {} }, 'chain must be a non-empty array of steps'],
      [{ chain: [{ args: [] }] }, 'chain[0] must have a task and args'],
      [{ chain: [{ task: 'next' }] }, 'chain[0] must have a task and args'],
      [{ chain: [null] }, 'chain[0] must be an object'],
      [
        {
          chain: [
            { kind: 'group', id: 'g', members: [] },
            { task: 'next', args: [] },
          ],
        },
        'chain[0]: a group must be the last step of its flow',
      ],
      [{ chain: [{ kind: 'loop', id: 'g' }] }, 'chain[0].kind "loop" is not a task, group or chord'],
      [
        { chord: { id: 'c', index: -1, queue: 'q' } },
        'chord must be a chord slot {id, index, queue} with a valid queue name',
      ],
      [
        { chord: { id: 'c', index: 0, queue: '' } },
        'chord must be a chord slot {id, index, queue} with a valid queue name',
      ],
      // The parts a worker builds messages from after the call ran are checked on arrival, naming the field.
      [
        { chain: [{ task: 'next', args: [], options: { priority: 12 } }] },
        'chain[0].options.priority must be an integer from 0 to 9',
      ],
      [
        { chain: [{ task: 'next', args: [], queue: 'x y' }] },
        "chain[0].queue must be a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
      ],
      [
        { link: [[{ task: 'next', args: [], chord: { id: 'c', index: 0, queue: '' } }]] },
        'link[0][0].chord must be a chord slot',
      ],
      [
        { linkError: [[{ task: 'next', args: [], options: { priority: -1 } }]] },
        'linkError[0][0].options.priority must be an integer from 0 to 9',
      ],
      [{ link: {} }, 'link must be an array of flows'],
      [{ chordError: { index: 0 } }, 'chordError must be a chord failure'],
      [{ createdAt: '1' }, 'createdAt must be a timestamp in ms'],
      [{ createdAt: undefined }, 'createdAt must be a timestamp in ms'],
      [{ headers: [] }, 'headers must be an object of strings'],
      [{ headers: { retries: 3 } }, 'headers must be an object of strings'],
      [{ headers: undefined }, 'headers must be an object of strings'],
    ];
    for (const [changes, problem] of cases) {
      assertInvalid(
        decodeWith(changes),
        'malformed',
        new RegExp(`^invalid envelope: ${problem.replace(/[()[\]{}.*+?^$|\\]/g, '\\$&')}$`),
      );
    }
  });

  test('lists every problem of a message at once', () => {
    assertInvalid(
      decodeWith({ id: '', priority: 11, headers: null }),
      'malformed',
      /^invalid envelope: id must be a non-empty string; priority must be 0–9; headers must be an object of strings$/,
    );
  });

  test('optional fields may be absent; unknown fields are kept', () => {
    const e = valid();
    for (const key of ['maxRetries', 'eta', 'expires', 'parentId', 'groupId', 'chain']) delete e[key];
    e.later = 'a field from a newer producer';
    assert.deepEqual(decodeEnvelope(JSON.stringify(e)), e);
  });

  test('refuses a message over the limit, in bytes, before parsing it', () => {
    const text = JSON.stringify(createEnvelope({ ...base, args: ['x'.repeat(100)] }));
    const bytes = Buffer.byteLength(text);
    assert.ok(decodeEnvelope(text, bytes));
    assertInvalid(
      () => decodeEnvelope(text, bytes - 1),
      'too-large',
      new RegExp(`^the message is ${bytes} bytes, over ${bytes - 1}$`),
    );
    assertInvalid(() => decodeEnvelope(`${'x'.repeat(200)}`, 100), 'too-large', /^the message is 200 bytes/);
  });

  test('counts bytes, not characters, so multi-byte text cannot slip past the limit', () => {
    const text = JSON.stringify(createEnvelope({ ...base, args: ['€'.repeat(100)] }));
    const bytes = Buffer.byteLength(text);
    assert.ok(text.length < bytes - 100);
    assertInvalid(
      () => decodeEnvelope(text, text.length + 50),
      'too-large',
      new RegExp(`^the message is ${bytes} bytes`),
    );
  });
});
