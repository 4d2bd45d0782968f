import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, nextTurn } from '../../../test/support/manual-clock.ts';
import type { Delivery } from '../brokers/broker.ts';
import { createEnvelope, type Envelope, InvalidMessageError } from '../message/envelope.ts';
import { createLogger, silentLogger } from '../observe/logger.ts';
import type { TaskDefinition, TaskOptions } from '../task.ts';
import { FetchLoop, type IntakeView, sortDelivery } from './fetch-loop.ts';

const NOW = 1_000_000;

const task = (name: string, options: TaskOptions = {}): TaskDefinition => ({ name, options, handler: () => null });

const resize = task('resize');
const charge = task('charge', { rateLimit: '10/s' });
const tasks = new Map([
  ['resize', resize],
  ['charge', charge],
]);

const delivery = (changes: Partial<Envelope> = {}, rest: Partial<Delivery> = {}): Delivery => ({
  receipt: `r-${Math.random()}`,
  envelope: { ...createEnvelope({ task: 'resize', args: [], queue: 'images' }), ...changes },
  problem: undefined,
  raw: '{}',
  deliveries: 1,
  enqueuedAt: NOW - 10,
  ...rest,
});

const view = (revoked: string[] = []): IntakeView => ({
  tasks,
  clock: new ManualClock(NOW),
  revoked: (id) => revoked.includes(id),
});

describe('sortDelivery', () => {
  test('a message that cannot be read is dead-lettered with its problem', () => {
    const problem = new InvalidMessageError('too-large', 'the message is 2 MiB, over the 1 MiB limit');
    assert.deepEqual(sortDelivery(delivery({}, { envelope: undefined, problem }), view()), {
      kind: 'dead-letter',
      reason: 'too-large',
      detail: 'the message is 2 MiB, over the 1 MiB limit',
    });
    assert.deepEqual(sortDelivery(delivery({}, { envelope: undefined }), view()), {
      kind: 'dead-letter',
      reason: 'malformed',
      detail: 'invalid message',
    });
  });

  test('a call of a task this worker does not run is dead-lettered unknown-task, its name quoted and cut short', () => {
    assert.deepEqual(sortDelivery(delivery({ task: 'resise\u001b[2J' }), view()), {
      kind: 'dead-letter',
      reason: 'unknown-task',
      detail: 'no task named "resise\\u001b[2J" is registered on this worker (it runs: resize, charge)',
    });
    const long = sortDelivery(delivery({ task: 'x'.repeat(500) }), { ...view(), tasks: new Map() });
    assert.deepEqual(long, {
      kind: 'dead-letter',
      reason: 'unknown-task',
      detail: `no task named "${'x'.repeat(200)}…" is registered on this worker (it runs: none)`,
    });
  });

  test('a revoked call is skipped, and so is one past its expiry (not one that expires now)', () => {
    const revoked = delivery();
    assert.deepEqual(sortDelivery(revoked, view([revoked.envelope?.id as string])), {
      kind: 'skip',
      definition: resize,
      why: 'revoked',
    });
    assert.deepEqual(sortDelivery(delivery({ expires: NOW - 1 }), view()), {
      kind: 'skip',
      definition: resize,
      why: 'expired',
    });
    assert.equal(sortDelivery(delivery({ expires: NOW }), view()).kind, 'line');
  });

  test("a call before its eta is put back until then, unless the broker's clock found it due", () => {
    assert.deepEqual(sortDelivery(delivery({ eta: NOW + 500 }), view()), { kind: 'put-back', at: NOW + 500 });
    // The broker enqueued it after its eta: this worker's clock is behind, and the call is due.
    assert.equal(sortDelivery(delivery({ eta: NOW + 500 }, { enqueuedAt: NOW + 600 }), view()).kind, 'line');
    assert.equal(sortDelivery(delivery({ eta: NOW }), view()).kind, 'line');
  });

  test('a revoked call is skipped, even before its eta', () => {
    const early = delivery({ eta: NOW + 500 });
    assert.equal(sortDelivery(early, view([early.envelope?.id as string])).kind, 'skip');
  });

  test('a call of a rate-limited task is held; the rest line up', () => {
    assert.deepEqual(sortDelivery(delivery({ task: 'charge' }), view()), { kind: 'hold', definition: charge });
    assert.deepEqual(sortDelivery(delivery(), view()), { kind: 'line' });
  });
});

/** A consumer whose receive() waits until the test hands it deliveries. */
function consumer() {
  const asked: number[] = [];
  const released: Delivery[][] = [];
  let answer: ((deliveries: Delivery[]) => void) | undefined;
  const fake = {
    healthy: true,
    receive: (max: number) => {
      asked.push(max);
      return new Promise<Delivery[]>((resolve) => {
        answer = resolve;
      });
    },
    release: async (deliveries: readonly Delivery[]) => void released.push([...deliveries]),
  };
  /** Answers the pending receive(), and lets the loop act on it. */
  const deliver = async (deliveries: Delivery[]) => {
    assert.ok(answer, 'the loop is receiving');
    const resolve = answer;
    answer = undefined;
    resolve(deliveries);
    await nextTurn();
  };
  return { fake, asked, released, deliver, receiving: () => answer !== undefined };
}

/** A fetch loop whose slots and outcomes are lists. */
function fetchLoop({
  concurrency = 2,
  prefetch = 1,
  errors,
}: {
  concurrency?: number;
  prefetch?: number;
  errors?: string[];
} = {}) {
  const running: Delivery[] = [];
  /** Calls done running and recording their outcomes. */
  const recording: Delivery[] = [];
  const skipped: string[] = [];
  const revoked = new Set<string>();
  const loop = new FetchLoop({
    concurrency,
    prefetch,
    tasks,
    clock: new ManualClock(NOW),
    log: errors ? createLogger('error', {}, (line) => errors.push(JSON.parse(line).msg)) : silentLogger,
    running: () => running.length,
    recording: () => recording.length,
    revoked: (id) => revoked.has(id),
    stopping: () => false,
    run: (d) => void running.push(d),
    deadLetter: () => {},
    skip: (_d, envelope, _definition, why) => void skipped.push(`${envelope.id} ${why}`),
    putBack: () => {},
    hold: () => {},
  });
  /** A running call ends: its slot is freed. */
  const finish = (d: Delivery) => {
    running.splice(running.indexOf(d), 1);
    loop.freed();
  };
  /** A running call's handler is done: it records its outcome outside its slot. */
  const handlerDone = (d: Delivery) => {
    running.splice(running.indexOf(d), 1);
    recording.push(d);
    loop.freed();
  };
  /** A call's outcome is recorded. */
  const recorded = (d: Delivery) => {
    recording.splice(recording.indexOf(d), 1);
    loop.freed();
  };
  return { loop, running, recording, skipped, revoked, finish, handlerDone, recorded };
}

describe('FetchLoop', () => {
  test('asks for as many calls as there is room for, and nothing more until a slot is freed', async () => {
    const { fake, asked, deliver, receiving } = consumer();
    const { loop, running, finish } = fetchLoop({ concurrency: 2, prefetch: 1 });
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    assert.deepEqual(asked, [3]);
    const [a, b, c] = [delivery(), delivery(), delivery()];
    await deliver([a, b]);
    assert.deepEqual(running, [a, b], 'two slots');
    assert.deepEqual(asked, [3, 1], 'room for one more, lined up');
    await deliver([c]);
    assert.deepEqual(running, [a, b]);
    assert.equal(loop.waiting, 1);
    assert.equal(receiving(), false, 'full: it waits for room');
    finish(a);
    assert.deepEqual(running, [b, c], 'the freed slot takes the call lined up');
    await nextTurn();
    assert.deepEqual(asked, [3, 1, 1]);
    stop.abort();
    await deliver([]);
    await done;
  });

  test('calls recording their outcomes free their slots; beyond concurrency + prefetch of them, they take room', async () => {
    const { fake, asked, deliver, receiving } = consumer();
    const { loop, running, handlerDone, recorded } = fetchLoop({ concurrency: 1, prefetch: 0 });
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    const [a, b, c] = [delivery(), delivery(), delivery()];
    await deliver([a]);
    assert.equal(receiving(), false, 'one slot, taken');
    handlerDone(a);
    await nextTurn();
    assert.deepEqual(asked, [1, 1], 'the next call is read while the last one records its outcome');
    await deliver([b]);
    assert.deepEqual(running, [b]);
    handlerDone(b);
    await nextTurn();
    assert.equal(receiving(), false, 'two recording, one more than concurrency + prefetch: no room');
    recorded(a);
    await nextTurn();
    assert.deepEqual(asked, [1, 1, 1]);
    await deliver([c]);
    assert.deepEqual(running, [c]);
    stop.abort();
    recorded(b);
    await done;
  });

  test('a call that was revoked while lined up is skipped, not run', async () => {
    const { fake, deliver } = consumer();
    const { loop, running, skipped, revoked, finish } = fetchLoop({ concurrency: 1, prefetch: 1 });
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    const [a, b] = [delivery(), delivery()];
    await deliver([a, b]);
    assert.deepEqual(running, [a]);
    revoked.add(b.envelope?.id as string);
    finish(a);
    assert.deepEqual(running, []);
    assert.deepEqual(skipped, [`${b.envelope?.id} revoked`]);
    await nextTurn();
    stop.abort();
    await deliver([]);
    await done;
  });

  test('calls received once stopping are handed back at once', async () => {
    const { fake, released, deliver } = consumer();
    const { loop, running } = fetchLoop();
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    stop.abort();
    const late = delivery();
    await deliver([late]);
    await done;
    assert.deepEqual(running, []);
    assert.deepEqual(released, [[late]]);
  });

  test('a loop waiting for room ends when stopped', async () => {
    const { fake, deliver } = consumer();
    const { loop } = fetchLoop({ concurrency: 1, prefetch: 0 });
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    await deliver([delivery()]);
    stop.abort();
    await done;
  });

  test('a consumer closed under the loop ends it, with an error that says so', async () => {
    const errors: string[] = [];
    const { fake, deliver } = consumer();
    const { loop } = fetchLoop({ errors });
    const done = loop.run(fake, new AbortController().signal);
    fake.healthy = false;
    await deliver([]);
    await done;
    assert.deepEqual(errors, [
      'the consumer was closed while the worker ran: it consumes no more; stop and restart it',
    ]);
  });

  test('takeWaiting gives back the calls lined up', async () => {
    const { fake, deliver } = consumer();
    const { loop } = fetchLoop({ concurrency: 1, prefetch: 2 });
    const stop = new AbortController();
    const done = loop.run(fake, stop.signal);
    const [a, b, c] = [delivery(), delivery(), delivery()];
    await deliver([a, b, c]);
    assert.deepEqual(loop.takeWaiting(), [b, c]);
    assert.equal(loop.waiting, 0);
    stop.abort();
    await done;
  });
});
