import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, nextTurn } from '../../../test/support/manual-clock.ts';
import type { Delivery } from '../brokers/broker.ts';
import { createEnvelope } from '../message/envelope.ts';
import { createLogger } from '../observe/logger.ts';
import type { TaskDefinition, TaskOptions } from '../task.ts';
import { RateGates, type SharedRateLimit } from './rate-gates.ts';

const task = (name: string, options: TaskOptions): TaskDefinition => ({ name, options, handler: () => null });

const delivery = (receipt: string, name = 'call_partner_api'): Delivery => ({
  receipt,
  envelope: createEnvelope({ task: name, args: [], queue: 'partners' }),
  problem: undefined,
  raw: '',
  deliveries: 1,
  enqueuedAt: 0,
});

/** Gates on a manual clock, with what they let through, put back and log. */
function gates({ capacity = 10, shared }: { capacity?: number; shared?: SharedRateLimit } = {}) {
  const clock = new ManualClock(1_000_000);
  const admitted: string[] = [];
  const putBack: [string, number][] = [];
  const warnings: string[] = [];
  const state = { stopping: false };
  const rateGates = new RateGates({
    capacity,
    clock,
    log: createLogger('warn', {}, (line) => warnings.push(JSON.parse(line).msg)),
    shared,
    admit: (d) => admitted.push(d.receipt),
    putBack: (d, at) => putBack.push([d.receipt, at]),
    stopping: () => state.stopping,
  });
  /** Moves the clock on and lets the gates act on it. */
  const advance = async (ms: number) => {
    clock.advance(ms);
    await nextTurn();
  };
  return { rateGates, clock, admitted, putBack, warnings, state, advance };
}

describe('RateGates', () => {
  test('a limit lets the first call through at once, then one per interval', async () => {
    const { rateGates, admitted, advance } = gates();
    const limited = task('call_partner_api', { rateLimit: '10/s' });
    for (const receipt of ['a', 'b', 'c']) rateGates.hold(limited, delivery(receipt));
    await advance(0);
    assert.deepEqual(admitted, ['a']);
    assert.equal(rateGates.held, 2);
    await advance(99);
    assert.deepEqual(admitted, ['a'], 'not before the interval');
    await advance(1);
    assert.deepEqual(admitted, ['a', 'b']);
    await advance(100);
    assert.deepEqual(admitted, ['a', 'b', 'c']);
    assert.equal(rateGates.held, 0);
  });

  test('each task has its gate: a limited task holds up no other', async () => {
    const { rateGates, admitted, advance } = gates();
    rateGates.hold(task('call_partner_api', { rateLimit: '1/m' }), delivery('a'));
    rateGates.hold(task('call_partner_api', { rateLimit: '1/m' }), delivery('b'));
    rateGates.hold(task('send_sms', { rateLimit: '1/m' }), delivery('c', 'send_sms'));
    await advance(0);
    assert.deepEqual(admitted, ['a', 'c']);
  });

  test('a gate holds at most its capacity; the next call goes back on the queue, due when the limit will let it run', async () => {
    const { rateGates, admitted, putBack, advance } = gates({ capacity: 2 });
    const limited = task('call_partner_api', { rateLimit: '10/s' });
    rateGates.hold(limited, delivery('a'));
    await advance(0);
    rateGates.hold(limited, delivery('b'));
    rateGates.hold(limited, delivery('c'));
    rateGates.hold(limited, delivery('d'));
    await advance(0);
    assert.deepEqual(admitted, ['a']);
    // Two held before it, so its turn is three intervals away.
    assert.deepEqual(putBack, [['d', 1_000_000 + 3 * 100]]);
    assert.equal(rateGates.held, 2);
  });

  test('a global limit asks the shared limiter, and waits as long as it says', async () => {
    const asked: [string, number][] = [];
    const answers = [0, 250, 0];
    const shared: SharedRateLimit = {
      rateLimit: async (name, intervalMs) => {
        asked.push([name, intervalMs]);
        return answers.shift() as number;
      },
    };
    const { rateGates, admitted, advance } = gates({ shared });
    const limited = task('call_partner_api', { rateLimit: '4/s', rateLimitScope: 'global' });
    rateGates.hold(limited, delivery('a'));
    rateGates.hold(limited, delivery('b'));
    await advance(0);
    assert.deepEqual(admitted, ['a']);
    await advance(249);
    assert.deepEqual(admitted, ['a']);
    await advance(1);
    assert.deepEqual(admitted, ['a', 'b']);
    assert.deepEqual(asked, [
      ['call_partner_api', 250],
      ['call_partner_api', 250],
      ['call_partner_api', 250],
    ]);
  });

  test('a local limit never asks the shared limiter', async () => {
    const shared: SharedRateLimit = { rateLimit: () => assert.fail('the shared limiter was asked') };
    const { rateGates, admitted, advance } = gates({ shared });
    const limited = task('call_partner_api', { rateLimit: '10/s' });
    rateGates.hold(limited, delivery('a'));
    rateGates.hold(limited, delivery('b'));
    await advance(100);
    assert.deepEqual(admitted, ['a', 'b']);
  });

  test('with nowhere to share it (no backend), a global limit is kept per worker', async () => {
    const { rateGates, admitted, advance } = gates({ shared: undefined });
    const limited = task('call_partner_api', { rateLimit: '10/s', rateLimitScope: 'global' });
    rateGates.hold(limited, delivery('a'));
    rateGates.hold(limited, delivery('b'));
    await advance(0);
    assert.deepEqual(admitted, ['a']);
    await advance(100);
    assert.deepEqual(admitted, ['a', 'b']);
  });

  test('when the shared limiter fails, the gate warns and asks again 500 ms later', async () => {
    let failures = 1;
    const shared: SharedRateLimit = {
      rateLimit: async () => {
        if (failures-- > 0) throw new Error('Redis is away');
        return 0;
      },
    };
    const { rateGates, admitted, warnings, advance } = gates({ shared });
    rateGates.hold(task('call_partner_api', { rateLimit: '10/s', rateLimitScope: 'global' }), delivery('a'));
    await advance(0);
    assert.deepEqual(warnings, ['rate limiter unavailable; trying again']);
    await advance(499);
    assert.deepEqual(admitted, []);
    await advance(1);
    assert.deepEqual(admitted, ['a']);
  });

  test('a stopping worker’s gates let nothing more through; close gives back what they hold and stops their timers', async () => {
    const { rateGates, clock, admitted, state, advance } = gates();
    const limited = task('call_partner_api', { rateLimit: '10/s' });
    rateGates.hold(limited, delivery('a'));
    rateGates.hold(limited, delivery('b'));
    await advance(0);
    state.stopping = true;
    rateGates.hold(limited, delivery('c'));
    await advance(100);
    assert.deepEqual(admitted, ['a']);
    const held = rateGates.close();
    assert.deepEqual(
      held.map((d) => d.receipt),
      ['b', 'c'],
    );
    assert.equal(rateGates.held, 0);
    assert.equal(clock.pending, 0);
  });
});
