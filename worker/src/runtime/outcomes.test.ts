import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, nextTurn } from '../../../test/support/manual-clock.ts';
import type { Delivery, Settlement } from '../brokers/broker.ts';
import { EtaBeyondHorizonError, ResultTooLargeError, TaskRevokedError } from '../errors.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import { silentLogger } from '../observe/logger.ts';
import { WorkerMetrics } from '../observe/metrics.ts';
import type { ResultRecord } from '../results/result.ts';
import type { TaskDefinition, TaskOptions } from '../task.ts';
import { RetryRequest } from './execute.ts';
import { decide, type OutcomeLimits, Outcomes, resultTooLarge } from './outcomes.ts';

const definition = (options: TaskOptions = {}): TaskDefinition => ({ name: 'resize', options, handler: () => null });

const call = (changes: Partial<Envelope> = {}): Envelope => ({
  ...createEnvelope({ task: 'resize', args: ['a.png'], queue: 'images' }),
  ...changes,
});

const limits: OutcomeLimits = { maxResultBytes: 1000, etaHorizon: 3_600_000 };
const at = { finishedAt: 1_000_000, kept: true, limits };
const failed = (error: unknown) => ({ ok: false as const, error });

describe('decide', () => {
  test('a success is a success, its value as the handler returned it', () => {
    assert.deepEqual(decide(definition(), call(), { ok: true, value: { url: 'a-256.png' } }, at), {
      kind: 'success',
      value: { url: 'a-256.png' },
    });
  });

  test('a result too large to keep fails the call; one that goes nowhere is not measured', () => {
    const value = 'x'.repeat(1000); // 1002 bytes as JSON
    const decision = decide(definition(), call(), { ok: true, value }, at);
    assert.equal(decision.kind, 'fail');
    const error = decision.kind === 'fail' ? decision.error : undefined;
    assert.ok(error instanceof ResultTooLargeError);
    assert.equal(
      error.message,
      'the result of resize is 1002 bytes, over the 1000-byte limit (maxResultBytes): return a reference (an ID, a URL) instead of the data',
    );
    assert.deepEqual(decide(definition(), call(), { ok: true, value }, { ...at, kept: false }), {
      kind: 'success',
      value,
    });
  });

  test('a failure with retries left is retried after the retry delay (1 s unless set)', () => {
    const error = new Error('timeout');
    assert.deepEqual(decide(definition({ maxRetries: 2 }), call(), failed(error), at), {
      kind: 'retry',
      error,
      delayMs: 1000,
      at: 1_001_000,
    });
    assert.deepEqual(decide(definition({ maxRetries: 2, retryDelay: 30_000 }), call(), failed(error), at), {
      kind: 'retry',
      error,
      delayMs: 30_000,
      at: 1_030_000,
    });
  });

  test('with backoff the delay doubles each attempt, up to its cap, and jitter picks within it', () => {
    const task = (options: TaskOptions) =>
      definition({ maxRetries: 9, retryDelay: 1000, retryBackoff: true, ...options });
    const delay = (options: TaskOptions, attempt: number, random?: () => number) => {
      const decision = decide(task(options), call({ attempt }), failed(new Error('x')), at, random);
      return decision.kind === 'retry' ? decision.delayMs : undefined;
    };
    assert.equal(delay({ retryJitter: false }, 1), 1000);
    assert.equal(delay({ retryJitter: false }, 3), 4000);
    assert.equal(delay({ retryJitter: false, retryBackoffMax: 5000 }, 5), 5000);
    assert.equal(
      delay({}, 3, () => 0.25),
      1000,
      'jitter is on by default',
    );
  });

  test("ctx.retry()'s countdown wins over the retry delay", () => {
    const cause = new Error('busy');
    assert.deepEqual(decide(definition({ maxRetries: 1 }), call(), failed(new RetryRequest(cause, 5000)), at), {
      kind: 'retry',
      error: cause,
      delayMs: 5000,
      at: 1_005_000,
    });
  });

  test('a retry due beyond the horizon fails instead (a countdown in seconds taken for ms), one due at it is retried', () => {
    const task = definition({ maxRetries: 1 });
    const beyond = decide(task, call(), failed(new RetryRequest(undefined, 3_600_001)), at);
    assert.equal(beyond.kind, 'fail');
    const error = beyond.kind === 'fail' ? beyond.error : undefined;
    assert.ok(error instanceof EtaBeyondHorizonError);
    assert.equal(error.code, 'ETA_BEYOND_HORIZON');
    assert.match(error.message, /^task resize: its eta \(1970-01-01T01:16:40\.001Z\) is 60 minutes away/);
    assert.equal(decide(task, call(), failed(new RetryRequest(undefined, 3_600_000)), at).kind, 'retry');
  });

  test('a failure with no retries left fails, and a terminated call is revoked', () => {
    const error = new Error('declined');
    assert.deepEqual(decide(definition(), call(), failed(error), at), { kind: 'fail', error });
    const revoked = new TaskRevokedError('id-1', 'terminated');
    assert.deepEqual(decide(definition({ maxRetries: 3 }), call(), failed(revoked), at), {
      kind: 'revoked',
      error: revoked,
    });
  });

  test('each limit is read only when it decides: the size for a result kept, the horizon for a retry', () => {
    let reads = 0;
    const counting: OutcomeLimits = {
      get maxResultBytes() {
        reads++;
        return 1000;
      },
      get etaHorizon() {
        reads++;
        return 3_600_000;
      },
    };
    decide(definition(), call(), { ok: true, value: 1 }, { ...at, kept: false, limits: counting });
    decide(definition(), call(), failed(new Error('x')), { ...at, limits: counting });
    assert.equal(reads, 0);
    decide(definition(), call(), { ok: true, value: 1 }, { ...at, limits: counting });
    decide(definition({ maxRetries: 1 }), call(), failed(new Error('x')), { ...at, limits: counting });
    assert.equal(reads, 2);
  });
});

describe('resultTooLarge', () => {
  test('measures the result as JSON, in UTF-8 bytes', () => {
    assert.equal(resultTooLarge('resize', 'x'.repeat(98), 100), undefined); // 100 bytes: at the limit
    assert.ok(resultTooLarge('resize', 'x'.repeat(99), 100) instanceof ResultTooLargeError);
    // 40 characters, 120 bytes as UTF-8: over 100, though its length is not.
    assert.ok(resultTooLarge('resize', '€'.repeat(40), 100) instanceof ResultTooLargeError);
    assert.equal(resultTooLarge('resize', '€'.repeat(30), 100), undefined);
    assert.equal(resultTooLarge('resize', undefined, 4), undefined, 'nothing is null');
  });
});

/** Outcomes over fakes that write down, in order, what is stored, told and settled. */
function outcomes({ hasBackend = true, failStore }: { hasBackend?: boolean; failStore?: Error } = {}) {
  const events: string[] = [];
  const stored: ResultRecord[] = [];
  const settled: Settlement[] = [];
  const clock = new ManualClock(1_000_000);
  const released: { counted: boolean | undefined }[] = [];
  const recorder = new Outcomes({
    app: {
      hasBackend,
      backend: {
        store: async (record) => {
          if (failStore) throw failStore;
          events.push(`store ${record.state}`);
          stored.push(record);
        },
      },
      resultExpires: 86_400_000,
      ...limits,
    },
    worker: 'worker-1',
    queue: 'images',
    log: silentLogger,
    clock,
    metrics: new WorkerMetrics(),
    workflows: {
      succeeded: async () => void events.push('workflow succeeded'),
      failed: async (_envelope, _error, state) => void events.push(`workflow ${state}`),
    },
    consumer: () => ({
      settle: async (_delivery, settlement) => {
        events.push(`settle ${settlement.kind}`);
        settled.push(settlement);
      },
      release: async (_deliveries, options) => {
        events.push('release');
        released.push({ counted: options?.counted });
      },
      drop: () => void events.push('drop'),
    }),
  });
  return { recorder, events, stored, settled, released, clock };
}

const deliveryOf = (envelope: Envelope | undefined): Delivery => ({
  receipt: 'r-1',
  envelope,
  problem: undefined,
  raw: '',
  deliveries: 1,
  enqueuedAt: 0,
});

describe('Outcomes', () => {
  test('a success is stored, its workflow told first, then acknowledged and counted', async () => {
    const { recorder, events, stored } = outcomes();
    const envelope = call({ link: [] });
    await recorder.finish(
      deliveryOf(envelope),
      envelope,
      definition(),
      { ok: true, value: 'a.png' },
      999_000,
      silentLogger,
    );
    assert.deepEqual(events, ['workflow succeeded', 'store SUCCESS', 'settle ack']);
    assert.deepEqual(stored[0], {
      id: envelope.id,
      task: 'resize',
      state: 'SUCCESS',
      attempts: 1,
      queue: 'images',
      worker: 'worker-1',
      rootId: envelope.rootId,
      result: 'a.png',
      startedAt: 999_000,
      finishedAt: 1_000_000,
    });
    assert.deepEqual(recorder.processed, { success: 1 });
  });

  test('a retry is stored RETRY with its due time, then requeued as the next attempt', async () => {
    const { recorder, events, stored, settled } = outcomes();
    const envelope = call();
    const task = definition({ maxRetries: 1, retryDelay: 5000 });
    await recorder.finish(deliveryOf(envelope), envelope, task, failed(new Error('x')), 999_000, silentLogger);
    assert.deepEqual(events, ['store RETRY', 'settle requeue']);
    assert.equal(stored[0]?.retryAt, 1_005_000);
    assert.deepEqual(settled[0], {
      kind: 'requeue',
      envelope: { ...envelope, attempt: 2, eta: 1_005_000 },
      at: 1_005_000,
    });
    assert.deepEqual(recorder.processed, { retry: 1 });
  });

  test('a failure is stored FAILURE before its workflow is told, then acknowledged', async () => {
    const { recorder, events } = outcomes();
    const envelope = call({ linkError: [] });
    await recorder.finish(deliveryOf(envelope), envelope, definition(), failed(new Error('x')), 999_000, silentLogger);
    assert.deepEqual(events, ['store FAILURE', 'workflow FAILURE', 'settle ack']);
    assert.deepEqual(recorder.processed, { failure: 1 });
  });

  test('without a backend nothing is stored, and the call is settled all the same', async () => {
    const { recorder, events } = outcomes({ hasBackend: false });
    const envelope = call();
    await recorder.finish(deliveryOf(envelope), envelope, definition(), { ok: true, value: 1 }, 999_000, silentLogger);
    assert.deepEqual(events, ['settle ack']);
  });

  test('an outcome that could not be recorded for a passing reason is handed back, counted', async () => {
    const { recorder, events, released } = outcomes();
    const envelope = call();
    await recorder.unfinished(
      deliveryOf(envelope),
      envelope,
      definition(),
      new Error('ECONNRESET'),
      999_000,
      silentLogger,
    );
    assert.deepEqual(events, ['release']);
    assert.deepEqual(released, [{ counted: true }]);
  });

  test('a dead letter records FAILURE for whoever waits on the call, then goes to the dead letters', async () => {
    const { recorder, events, stored, settled } = outcomes();
    const envelope = call();
    recorder.deadLetter(deliveryOf(envelope), 'unknown-task', 'no task named "resize"');
    await nextTurn();
    assert.deepEqual(events, ['store FAILURE', 'settle dead-letter']);
    assert.deepEqual(stored[0]?.error, {
      name: 'DeadLettered',
      code: 'unknown-task',
      message: 'dead-lettered (unknown-task): no task named "resize"',
    });
    assert.deepEqual(settled[0], { kind: 'dead-letter', reason: 'unknown-task', detail: 'no task named "resize"' });
  });

  test('a settlement that fails outside a running call drops the delivery instead of throwing', async () => {
    const { recorder, events } = outcomes({ failStore: new Error('Redis is away') });
    const envelope = call();
    recorder.skip(deliveryOf(envelope), envelope, definition(), 'expired');
    await nextTurn();
    assert.deepEqual(events, ['drop']);
  });
});
