import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, nextTurn } from '../../../test/support/manual-clock.ts';
import {
  SerializationError,
  SoftTimeLimitExceededError,
  TaskRevokedError,
  TimeLimitExceededError,
  UnrecoverableError,
} from '../errors.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import { silentLogger } from '../observe/logger.ts';
import type { Handler, TaskContext, TaskDefinition, TaskOptions } from '../task.ts';
import { execute, judgeFailure, MaxRetriesExceededError, RetryRequest } from './execute.ts';

const definition = (options: TaskOptions = {}, handler: Handler<unknown[], unknown> = () => null): TaskDefinition => ({
  name: 'charge_card',
  options,
  handler,
});

const call = (changes: Partial<Envelope> = {}): Envelope => ({
  ...createEnvelope({ task: 'charge_card', args: [42, 'EUR'], queue: 'payments', headers: { trace: 't-1' } }),
  ...changes,
});

/** An error with a `code`, as Node's network errors carry. */
const withCode = (code: string) => Object.assign(new Error(`failed with ${code}`), { code });

describe('judgeFailure', () => {
  test('an error with retries left is retried, after the policy delay', () => {
    const error = new Error('gateway down');
    assert.deepEqual(judgeFailure(definition({ maxRetries: 2 }), call(), error), {
      kind: 'retry',
      delayMs: undefined,
      error,
    });
  });

  test('retries left count the attempts already made', () => {
    const error = new Error('gateway down');
    const task = definition({ maxRetries: 2 });
    assert.equal(judgeFailure(task, call({ attempt: 2 }), error).kind, 'retry');
    assert.deepEqual(judgeFailure(task, call({ attempt: 3 }), error), { kind: 'fail', error });
  });

  test('without maxRetries, a task is not retried', () => {
    const error = new Error('gateway down');
    assert.deepEqual(judgeFailure(definition(), call(), error), { kind: 'fail', error });
  });

  test("the call's maxRetries overrides the task's, both ways", () => {
    const error = new Error('gateway down');
    assert.equal(judgeFailure(definition(), call({ maxRetries: 1 }), error).kind, 'retry');
    assert.equal(judgeFailure(definition({ maxRetries: 5 }), call({ maxRetries: 0 }), error).kind, 'fail');
    assert.equal(judgeFailure(definition({ maxRetries: 5 }), call({ maxRetries: 1, attempt: 2 }), error).kind, 'fail');
  });

  test('UnrecoverableError fails at once, whatever the retry options say', () => {
    const error = new UnrecoverableError('card declined');
    for (const options of [{ maxRetries: 5 }, { maxRetries: 5, autoRetryFor: [Error] }]) {
      assert.deepEqual(judgeFailure(definition(options), call(), error), { kind: 'fail', error });
    }
  });

  test('a revoked task is revoked, not failed or retried', () => {
    const error = new TaskRevokedError('id-1', 'terminated');
    assert.deepEqual(judgeFailure(definition({ maxRetries: 5 }), call(), error), { kind: 'revoked', error });
  });

  test('ctx.retry() with retries left: retried after its countdown, carrying its error', () => {
    const cause = new Error('rate limited');
    assert.deepEqual(judgeFailure(definition({ maxRetries: 1 }), call(), new RetryRequest(cause, 5000)), {
      kind: 'retry',
      delayMs: 5000,
      error: cause,
    });
    assert.deepEqual(judgeFailure(definition({ maxRetries: 1 }), call(), new RetryRequest(undefined, undefined)), {
      kind: 'retry',
      delayMs: undefined,
      error: undefined,
    });
  });

  test('ctx.retry() is honoured even for errors autoRetryFor would not retry', () => {
    const verdict = judgeFailure(
      definition({ maxRetries: 1, autoRetryFor: [TypeError] }),
      call(),
      new RetryRequest(new RangeError('x'), 10),
    );
    assert.equal(verdict.kind, 'retry');
  });

  test('ctx.retry() with no retries left fails with its error, or with MaxRetriesExceededError', () => {
    const cause = new Error('rate limited');
    const task = definition({ maxRetries: 2 });
    assert.deepEqual(judgeFailure(task, call({ attempt: 3 }), new RetryRequest(cause, 10)), {
      kind: 'fail',
      error: cause,
    });
    const verdict = judgeFailure(task, call({ attempt: 3 }), new RetryRequest(undefined, 10));
    assert.equal(verdict.kind, 'fail');
    const error = verdict.kind === 'fail' ? verdict.error : undefined;
    assert.ok(error instanceof MaxRetriesExceededError);
    assert.equal(error.code, 'MAX_RETRIES_EXCEEDED');
    assert.equal(error.message, 'task charge_card asked to retry, but it has used all 2 retries');
  });

  test('autoRetryFor by class: instances of those classes (and subclasses) only', () => {
    class GatewayError extends Error {}
    class GatewayTimeout extends GatewayError {}
    const task = definition({ maxRetries: 3, autoRetryFor: [GatewayError, TypeError] });
    assert.equal(judgeFailure(task, call(), new GatewayError('down')).kind, 'retry');
    assert.equal(judgeFailure(task, call(), new GatewayTimeout('slow')).kind, 'retry');
    assert.equal(judgeFailure(task, call(), new TypeError('x is undefined')).kind, 'retry');
    const other = new RangeError('bad amount');
    assert.deepEqual(judgeFailure(task, call(), other), { kind: 'fail', error: other });
  });

  test("autoRetryFor by string: an error's code, or its name", () => {
    const task = definition({ maxRetries: 3, autoRetryFor: ['ECONNRESET', 'GatewayError'] });
    assert.equal(judgeFailure(task, call(), withCode('ECONNRESET')).kind, 'retry');
    assert.equal(judgeFailure(task, call(), withCode('ECONNREFUSED')).kind, 'fail');
    const named = Object.assign(new Error('down'), { name: 'GatewayError' });
    assert.equal(judgeFailure(task, call(), named).kind, 'retry');
    // Thrown values that are not errors match nothing, and do not break the matching.
    for (const thrown of ['ECONNRESET', null, undefined, 42]) {
      assert.deepEqual(judgeFailure(task, call(), thrown), { kind: 'fail', error: thrown }, String(thrown));
    }
  });

  test('autoRetryFor still stops at maxRetries', () => {
    const task = definition({ maxRetries: 1, autoRetryFor: ['ECONNRESET'] });
    assert.equal(judgeFailure(task, call({ attempt: 2 }), withCode('ECONNRESET')).kind, 'fail');
  });
});

describe('execute', () => {
  test('runs the handler with its context and arguments; the outcome is its value', async () => {
    let seen: { ctx: TaskContext; args: unknown[] } | undefined;
    const envelope = call({ attempt: 2, maxRetries: 3, parentId: 'parent-1' });
    const { outcome } = execute(
      definition({ maxRetries: 1 }, (ctx, ...args) => {
        seen = { ctx, args };
        return { charged: args[0] };
      }),
      envelope,
      silentLogger,
    );
    assert.deepEqual(await outcome, { ok: true, value: { charged: 42 } });
    assert.ok(seen);
    assert.deepEqual(seen.args, [42, 'EUR']);
    const { ctx } = seen;
    assert.deepEqual(
      {
        id: ctx.id,
        task: ctx.task,
        queue: ctx.queue,
        attempt: ctx.attempt,
        retriesLeft: ctx.retriesLeft,
        headers: ctx.headers,
        parentId: ctx.parentId,
        rootId: ctx.rootId,
      },
      {
        id: envelope.id,
        task: 'charge_card',
        queue: 'payments',
        attempt: 2,
        retriesLeft: 2,
        headers: { trace: 't-1' },
        parentId: 'parent-1',
        rootId: envelope.rootId,
      },
    );
    assert.equal(ctx.signal.aborted, false);
    const retry = ctx.retry({ error: new Error('later'), countdown: 30 });
    assert.ok(retry instanceof RetryRequest);
    assert.equal(retry.countdown, 30);
  });

  test('retriesLeft never goes below zero', async () => {
    let retriesLeft: number | undefined;
    const task = definition({ maxRetries: 1 }, (ctx) => {
      retriesLeft = ctx.retriesLeft;
    });
    await execute(task, call({ attempt: 5 }), silentLogger).outcome;
    assert.equal(retriesLeft, 0);
  });

  test('a handler that returns nothing has the value null', async () => {
    const { outcome } = execute(
      definition({}, async () => undefined),
      call(),
      silentLogger,
    );
    assert.deepEqual(await outcome, { ok: true, value: null });
  });

  test('a thrown error, a rejection and a thrown string all become failures', async () => {
    const error = new Error('declined');
    const cases: [Handler<unknown[], unknown>, unknown][] = [
      [
        () => {
          throw error;
        },
        error,
      ],
      [() => Promise.reject(error), error],
      [
        () => {
          throw 'not an Error';
        },
        'not an Error',
      ],
    ];
    for (const [handler, thrown] of cases) {
      assert.deepEqual(await execute(definition({}, handler), call(), silentLogger).outcome, {
        ok: false,
        error: thrown,
      });
    }
  });

  test('a value returned, resolved by a promise or by any thenable is the outcome; nothing is null either way', async () => {
    const cases: [Handler<unknown[], unknown>, unknown][] = [
      [() => 7, 7],
      [async () => 7, 7],
      // biome-ignore lint/suspicious/noThenProperty: a thenable that is not a Promise, on purpose
      [() => ({ then: (resolve: (v: unknown) => void) => resolve(7) }), 7],
      [() => undefined, null],
      [() => Promise.resolve(undefined), null],
    ];
    for (const [handler, value] of cases) {
      assert.deepEqual(await execute(definition({}, handler), call(), silentLogger).outcome, { ok: true, value });
    }
    const late = await execute(
      definition({}, async () => new Map()),
      call(),
      silentLogger,
    ).outcome;
    assert.equal(late.ok, false, 'a promise of a value JSON cannot carry fails too');
    assert.ok(!late.ok && late.error instanceof SerializationError);
  });

  test('a value JSON cannot carry is a failure naming the task', async () => {
    const { outcome } = execute(
      definition({}, () => ({ at: new Date() })),
      call(),
      silentLogger,
    );
    const result = await outcome;
    assert.equal(result.ok, false);
    const error = result.ok ? undefined : result.error;
    assert.ok(error instanceof SerializationError);
    assert.match(error.message, /^the result of charge_card\.at cannot be sent: a Date is not JSON/);
  });

  test('at the soft time limit the signal aborts, and the handler may still finish', async () => {
    const clock = new ManualClock();
    let reason: unknown;
    const { outcome } = execute(
      definition({ softTimeLimit: 20, timeLimit: 5000 }, async (ctx) => {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        reason = ctx.signal.reason;
        return 'cleaned up';
      }),
      call(),
      silentLogger,
      clock,
    );
    clock.advance(19);
    await nextTurn();
    const early = reason;
    assert.equal(early, undefined, 'not before the soft time limit');
    clock.advance(1);
    assert.deepEqual(await outcome, { ok: true, value: 'cleaned up' });
    assert.ok(reason instanceof SoftTimeLimitExceededError);
    assert.equal(reason.code, 'SOFT_TIME_LIMIT');
    assert.equal(reason.message, 'the task ran past its soft time limit of 0.02s');
  });

  test('at the hard time limit a handler that never settles fails, and its signal aborts', async () => {
    const clock = new ManualClock();
    let signal: AbortSignal | undefined;
    const { outcome } = execute(
      definition({ timeLimit: 30 }, (ctx) => {
        signal = ctx.signal;
        return new Promise(() => {});
      }),
      call(),
      silentLogger,
      clock,
    );
    let over = false;
    void outcome.then(() => {
      over = true;
    });
    clock.advance(29);
    await nextTurn();
    assert.equal(over, false, 'not before the time limit');
    clock.advance(1);
    const result = await outcome;
    assert.equal(result.ok, false);
    const error = result.ok ? undefined : result.error;
    assert.ok(error instanceof TimeLimitExceededError);
    assert.equal(error.message, 'the task ran past its time limit of 0.03s');
    assert.equal(signal?.aborted, true);
    assert.equal(signal?.reason, error);
  });

  test('the soft limit fires before the hard one', async () => {
    const clock = new ManualClock();
    const reasons: unknown[] = [];
    const { outcome } = execute(
      definition({ softTimeLimit: 10, timeLimit: 40 }, (ctx) => {
        ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
        return new Promise(() => {});
      }),
      call(),
      silentLogger,
      clock,
    );
    clock.advance(40);
    const result = await outcome;
    assert.ok(!result.ok && result.error instanceof TimeLimitExceededError);
    assert.equal(reasons.length, 1, 'the signal aborts once');
    assert.ok(reasons[0] instanceof SoftTimeLimitExceededError);
  });

  test('abort() ends a running call at once with the reason, and aborts its signal', async () => {
    let signal: AbortSignal | undefined;
    const started = Promise.withResolvers<void>();
    const execution = execute(
      definition({}, (ctx) => {
        signal = ctx.signal;
        started.resolve();
        return new Promise(() => {});
      }),
      call(),
      silentLogger,
    );
    await started.promise;
    const reason = new TaskRevokedError('id-1', 'terminated');
    execution.abort(reason);
    assert.deepEqual(await execution.outcome, { ok: false, error: reason });
    assert.equal(signal?.aborted, true);
    assert.equal(signal?.reason, reason);
  });

  test('once the call is done, its time limits no longer fire', async () => {
    const clock = new ManualClock();
    let signal: AbortSignal | undefined;
    const { outcome } = execute(
      definition({ softTimeLimit: 10, timeLimit: 20 }, (ctx) => {
        signal = ctx.signal;
        return 'quick';
      }),
      call(),
      silentLogger,
      clock,
    );
    assert.deepEqual(await outcome, { ok: true, value: 'quick' });
    assert.equal(clock.pending, 0, 'both timers are cancelled');
    clock.advance(50); // past both limits: their timers would have fired by now
    assert.equal(signal?.aborted, false);
  });
});
