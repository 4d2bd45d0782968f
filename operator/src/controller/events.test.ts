import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue } from '../api/types.ts';
import { KubeApiError } from '../runtime/kube-client.ts';
import { EVENT_REPEAT_MS, eventRecorder, type RecordedEvents, shouldRecord } from './events.ts';
import { Scrubber } from './scrub.ts';

describe('Event deduplication', () => {
  test('an identical Event is recorded again only once EVENT_REPEAT_MS has passed', () => {
    const recorded: RecordedEvents = new Map();
    assert.ok(shouldRecord(recorded, 'ProbeFailed', 'no answer', 1_000));
    assert.ok(!shouldRecord(recorded, 'ProbeFailed', 'no answer', 1_000 + EVENT_REPEAT_MS - 1));
    assert.ok(shouldRecord(recorded, 'ProbeFailed', 'no answer', 1_000 + EVENT_REPEAT_MS));
    // The window starts again from the last one recorded, not from the first.
    assert.ok(!shouldRecord(recorded, 'ProbeFailed', 'no answer', 1_000 + 2 * EVENT_REPEAT_MS - 1));
  });

  test('a new message, another reason, or always is recorded at once', () => {
    const recorded: RecordedEvents = new Map();
    assert.ok(shouldRecord(recorded, 'ProbeFailed', 'no answer', 0));
    assert.ok(shouldRecord(recorded, 'ProbeFailed', 'connection refused', 1));
    assert.ok(shouldRecord(recorded, 'SecretNotFound', 'connection refused', 2));
    assert.ok(shouldRecord(recorded, 'Scaled', 'scaled 0 → 1', 3));
    assert.ok(shouldRecord(recorded, 'Scaled', 'scaled 0 → 1', 4, true));
    // A suppressed Event does not move the window.
    assert.ok(!shouldRecord(recorded, 'ProbeFailed', 'connection refused', 2 + EVENT_REPEAT_MS - 2));
    assert.equal(recorded.get('ProbeFailed')?.at, 1);
  });

  test('one entry per reason, however many messages a reason has had', () => {
    const recorded: RecordedEvents = new Map();
    for (let i = 0; i < 1000; i++) shouldRecord(recorded, 'ProbeFailed', `failure ${i}`, i);
    assert.equal(recorded.size, 1);
  });
});

describe('eventRecorder', () => {
  const tq: TaskQueue = {
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: 'emails', namespace: 'team-a', uid: 'uid-1' },
    spec: { broker: { redis: { url: 'redis://r:6379' } } },
  };

  function harness(post: (path: string, body: unknown) => Promise<unknown> = async () => ({})) {
    let now = Date.parse('2026-01-02T03:04:05Z');
    const posted: { path: string; body: Record<string, unknown> }[] = [];
    const logged: { msg: string; fields?: Record<string, unknown> }[] = [];
    const scrub = new Scrubber();
    scrub.secret('hunter2');
    const record = eventRecorder(
      {
        kube: {
          post: async <T>(path: string, body: unknown) => {
            posted.push({ path, body: body as Record<string, unknown> });
            return (await post(path, body)) as T;
          },
        },
        identity: 'operator-0',
        clock: () => now,
        scrub,
        say: (msg, fields) => logged.push({ msg, ...(fields ? { fields } : {}) }),
      },
      tq,
      new Map(),
    );
    return { record, posted, logged, advance: (ms: number) => (now += ms) };
  }

  test('posts the Event in the namespace, scrubbed, and logs a Warning as it records it', async () => {
    const { record, posted, logged } = harness();
    await record('Warning', 'ProbeFailed', 'cannot connect: password hunter2 refused');
    assert.equal(posted.length, 1);
    assert.equal(posted[0]?.path, '/api/v1/namespaces/team-a/events');
    const body = posted[0]?.body;
    assert.equal(body?.message, 'cannot connect: password *** refused');
    assert.equal(body?.type, 'Warning');
    assert.equal(body?.reason, 'ProbeFailed');
    assert.equal(body?.reportingInstance, 'operator-0');
    assert.equal(body?.firstTimestamp, '2026-01-02T03:04:05.000Z');
    assert.deepEqual(body?.involvedObject, {
      apiVersion: 'taskfleet.dev/v1alpha1',
      kind: 'TaskQueue',
      name: 'emails',
      namespace: 'team-a',
      uid: 'uid-1',
    });
    assert.deepEqual(logged, [
      {
        msg: 'warning',
        fields: { taskqueue: 'team-a/emails', reason: 'ProbeFailed', message: 'cannot connect: password *** refused' },
      },
    ]);
  });

  test('a repeated warning is posted once per window, on the injected clock', async () => {
    const { record, posted, logged, advance } = harness();
    await record('Warning', 'ProbeFailed', 'no answer');
    advance(EVENT_REPEAT_MS - 1);
    await record('Warning', 'ProbeFailed', 'no answer');
    assert.equal(posted.length, 1);
    assert.equal(logged.length, 1);
    advance(1);
    await record('Warning', 'ProbeFailed', 'no answer');
    assert.equal(posted.length, 2);
  });

  test('a Normal Event is not logged; always records it every time', async () => {
    const { record, posted, logged } = harness();
    await record('Normal', 'Scaled', 'scaled 0 → 1', true);
    await record('Normal', 'Scaled', 'scaled 0 → 1', true);
    assert.equal(posted.length, 2);
    assert.deepEqual(logged, []);
  });

  test('an Event the API server refuses is logged, not thrown; any other error is thrown', async () => {
    const refused = harness(async () => {
      throw new KubeApiError(403, 'Forbidden', 'events is forbidden');
    });
    await refused.record('Normal', 'Scaled', 'scaled 0 → 1');
    assert.deepEqual(refused.logged, [
      { msg: 'could not record an event', fields: { reason: 'Scaled', error: 'events is forbidden' } },
    ]);
    const broken = harness(async () => {
      throw new TypeError('bug');
    });
    await assert.rejects(broken.record('Normal', 'Scaled', 'scaled 0 → 1'), TypeError);
  });
});
