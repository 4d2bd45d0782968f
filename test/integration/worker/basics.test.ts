import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  chain,
  NoResultBackendError,
  SerializationError,
  TaskFailedError,
  Taskfleet,
  UnrecoverableError,
} from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';
import { useRedis } from '../../support/stack.ts';

test('the Celery tutorial, in TypeScript: delay a task, get its result later', async () => {
  const app = await testApp();
  const sendWelcomeEmail = app.task('send_welcome_email', async (_ctx, userEmail: string) => {
    return `Email sent to ${userEmail}`;
  });
  await startWorker(app);
  const result = await sendWelcomeEmail.delay('user@example.com');
  assert.equal(await result.get({ timeout: 10_000 }), 'Email sent to user@example.com');
  assert.equal(await result.ready(), true);
  assert.equal(await result.state(), 'SUCCESS');
});

test('a chain: payment, then receipt, then inventory, each given the previous result', async () => {
  const app = await testApp();
  const processPayment = app.task('process_payment', (_ctx, orderId: number) => ({ orderId, paid: 42 }));
  const sendReceipt = app.task(
    'send_receipt',
    (_ctx, payment: { orderId: number; paid: number }) => `receipt-${payment.orderId}`,
  );
  const updateInventory = app.task('update_inventory', (_ctx, receipt: string) => `${receipt}:inventory-updated`);
  await startWorker(app);
  const result = await chain(processPayment.s(123), sendReceipt.s(), updateInventory.s()).delay();
  assert.equal(await result.get({ timeout: 10_000 }), 'receipt-123:inventory-updated');
});

test('a failing task is retried maxRetries times, then fails with the handler error', async () => {
  const app = await testApp();
  let calls = 0;
  const fetchExternalData = app.task(
    'fetch_external_data',
    { maxRetries: 3, retryDelay: 10 },
    async (ctx, url: string) => {
      calls++;
      throw new Error(`GET ${url} failed on attempt ${ctx.attempt}`);
    },
  );
  await startWorker(app);
  const result = await fetchExternalData.delay('https://example.invalid/data');
  await assert.rejects(result.get({ timeout: 10_000 }), (error: TaskFailedError) => {
    assert.ok(error instanceof TaskFailedError);
    assert.match(error.message, /failed on attempt 4/);
    return true;
  });
  assert.equal(calls, 4);
  assert.equal((await result.info())?.attempts, 4);
});

test('UnrecoverableError fails at once; ctx.retry() retries; a thrown string is recorded', async () => {
  const app = await testApp();
  const fatal = app.task('fatal', { maxRetries: 5 }, () => {
    throw new UnrecoverableError('card declined');
  });
  const flaky = app.task('flaky', { maxRetries: 2 }, (ctx) => {
    if (ctx.attempt < 3) throw ctx.retry({ countdown: 5 });
    return ctx.attempt;
  });
  const stringy = app.task('stringy', () => {
    throw 'not an Error';
  });
  await startWorker(app);
  const [a, b, c] = await Promise.all([fatal.delay(), flaky.delay(), stringy.delay()]);
  await assert.rejects(a.get({ timeout: 10_000 }), /UnrecoverableError: card declined/);
  assert.equal((await a.info())?.attempts, 1);
  assert.equal(await b.get({ timeout: 10_000 }), 3);
  await assert.rejects(c.get({ timeout: 10_000 }), /NonErrorThrown: the handler threw a non-Error value: not an Error/);
});

test('arguments that are not JSON are refused at enqueue, naming the argument', async () => {
  const app = await testApp();
  const t = app.task('takes_anything', (_ctx, _a: unknown, _b: unknown) => null);
  await assert.rejects(t.delay(1, { when: new Date() }), (error: SerializationError) => {
    assert.ok(error instanceof SerializationError);
    assert.match(error.message, /argument 2 of takes_anything\.when cannot be sent: a Date is not JSON/);
    return true;
  });
  await assert.rejects(
    t.delay(() => 1, 2),
    /argument 1 of takes_anything cannot be sent: a function is not JSON/,
  );
});

test('asking for a result with no backend configured is a clear error', async () => {
  const { url } = await useRedis();
  const app = new Taskfleet({ broker: url });
  const t = app.task('no_backend', () => 1);
  const result = await t.delay();
  await assert.rejects(result.get(), (error: NoResultBackendError) => {
    assert.ok(error instanceof NoResultBackendError);
    assert.match(error.message, /needs a result backend: pass `backend: 'redis:\/\/…'`/);
    return true;
  });
  await app.broker.purge(app.defaultQueue);
  await app.close();
});
