/**
 * The console's page in a real Chromium, against a real worker on the stack's Redis: what a person sees
 * and does (docs/console.md). Needs the page built (`npm run build`).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Page } from 'playwright-core';
import { chord, group, Taskfleet } from 'taskfleet';
import { ConsoleApi } from '../../../worker/src/console/api.ts';
import { authFromEnv } from '../../../worker/src/console/auth.ts';
import { startConsole } from '../../../worker/src/console/server.ts';
import { silentLogger } from '../../../worker/src/observe/logger.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { launchBrowser } from '../../support/browser.ts';
import { eventually } from '../../support/eventually.ts';

/** With TASKFLEET_CONSOLE_SCREENSHOTS=<dir> (docs/ when refreshing the docs' pictures), saves the page there. */
async function shoot(page: Page, name: string): Promise<void> {
  const dir = process.env.TASKFLEET_CONSOLE_SCREENSHOTS;
  if (dir) await page.screenshot({ path: join(dir, name), fullPage: true });
}

async function consoleFor(app: Taskfleet, env: Record<string, string> = {}): Promise<string> {
  const server = await startConsole({
    api: new ConsoleApi(app),
    auth: authFromEnv(env),
    logger: silentLogger,
    port: 0,
    refreshMs: 200,
  });
  after(() => server.close());
  return server.url;
}

test('the overview shows the worker and its counts rising; a failed call shows FAILURE and its retry button re-runs it', async () => {
  const app = await testApp({ history: true });
  let runs = 0;
  const flaky = app.task('fails-once', { maxRetries: 0 }, (_ctx, n: number) => {
    runs++;
    if (runs === 1) throw new Error('fails the first time');
    return n + 1;
  });
  const ok = app.task('ok', async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return 'fine';
  });
  await startWorker(app);
  const url = await consoleFor(app);
  const page = await (await launchBrowser()).newPage();
  const refused: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) refused.push(message.text());
  });
  page.on('pageerror', (error) => refused.push(error.message));
  await page.goto(url);
  const row = page.locator('[data-testid="worker-row"]');
  await row.waitFor();
  const processed = async () =>
    Number(/success (\d+)/.exec((await row.locator('[data-testid="processed"]').textContent()) ?? '')?.[1] ?? 0);
  const before = await processed();
  for (let i = 0; i < 5; i++) await ok.delay();
  await eventually('the page shows the new successes without a reload', async () => (await processed()) >= before + 5);
  const graph = (id: string) => page.locator(`[data-testid="graph-${id}"]`);
  const peak = async (id: string, line: string) =>
    Number(JSON.parse((await graph(id).getAttribute('data-peaks')) ?? '{}')[line] ?? 0);
  await eventually('the throughput graph draws the successes', async () => (await peak('throughput', 'success')) > 0);
  await eventually('the latency graph draws the durations', async () => (await peak('latency', 'duration p50')) >= 5);
  const drawn = Number(await graph('backlog').getAttribute('data-points'));
  await eventually(
    'the graphs gain a point with each update, without a reload',
    async () => Number(await graph('backlog').getAttribute('data-points')) > drawn,
  );
  assert.match(
    (await page.locator('[data-testid="queue-row"] [data-testid="arrivals"]').first().textContent()) ?? '',
    /^\d+\.\d\/s$/,
  );
  await shoot(page, 'console-overview.png');

  const failed = await flaky.delay(1);
  await assert.rejects(failed.get({ timeout: 10_000 }));
  await page.goto(`${url}#/tasks?queue=${encodeURIComponent(app.defaultQueue)}&state=FAILURE`);
  const failedRow = page.locator(`[data-testid="task-row"][data-task-id="${failed.id}"]`);
  assert.equal(await failedRow.getAttribute('data-state'), 'FAILURE');
  await failedRow.locator('a').click();
  await page.locator('[data-testid="task-state"]', { hasText: 'FAILURE' }).waitFor();
  await page.locator('[data-testid="retry"]').click();
  // The page moves to the new call once the API has made it (reloading before would lose that move),
  // and the new call runs and succeeds.
  await page.waitForURL((at) => at.hash.startsWith('#/task/') && !at.hash.includes(failed.id));
  await eventually('the retry succeeded', async () => {
    await page.reload();
    return (await page.locator('[data-testid="task-state"]').textContent()) === 'SUCCESS';
  });
  assert.match((await page.locator('main').textContent()) ?? '', new RegExp(`retry of ${failed.id}`));
  await shoot(page, 'console-task.png');
  assert.equal(runs, 2);
  assert.deepEqual(refused, [], 'the page runs under its Content-Security-Policy without errors');
});

test('the read-only role sees the tasks and no action button', async () => {
  const app = await testApp({ history: true });
  const failing = app.task('fails', { maxRetries: 0 }, () => {
    throw new Error('no');
  });
  await startWorker(app);
  const call = await failing.delay();
  await assert.rejects(call.get({ timeout: 10_000 }));
  const viewer = 'viewer-token-0123456789abcdef';
  const url = await consoleFor(app, { TASKFLEET_CONSOLE_READONLY_TOKEN: viewer });
  const page = await (await launchBrowser()).newPage();
  await page.goto(`${url}#/task/${call.id}`);
  await page.locator('input[type="password"]').fill(viewer);
  await page.locator('form button').click();
  await page.locator('[data-testid="task-state"]', { hasText: 'FAILURE' }).waitFor();
  assert.equal(await page.locator('button[data-testid]').count(), 0);
  await page.goto(`${url}#/tasks?queue=${encodeURIComponent(app.defaultQueue)}`);
  await page.locator('[data-testid="task-row"]').first().waitFor();
  assert.equal(await page.locator('button[data-testid]').count(), 0);
});

test('a dead letter is listed with its reason, and the requeue button runs it', async () => {
  const app = await testApp({ history: true });
  const producer = new Taskfleet({ broker: app.brokerUrl, prefix: app.prefix, defaultQueue: app.defaultQueue });
  after(() => producer.close());
  const lost = await producer.signature('registered-later').delay();
  await startWorker(app);
  const url = await consoleFor(app);
  const page = await (await launchBrowser()).newPage();
  await page.goto(`${url}#/dead-letters?queue=${encodeURIComponent(app.defaultQueue)}`);
  const row = page.locator('[data-testid="dead-letter-row"]', { hasText: lost.id });
  await eventually('the dead letter is listed', async () => {
    await page.reload();
    return (await row.count()) === 1;
  });
  assert.match((await row.textContent()) ?? '', /unknown-task/);
  await shoot(page, 'console-dead-letters.png');
  app.task('registered-later', () => 'ran at last');
  await row.locator('[data-testid="requeue"]').click();
  assert.equal(await app.result(lost.id).get({ timeout: 10_000 }), 'ran at last');
  await page.locator('[data-testid="toast"]', { hasText: 'requeued 1' }).waitFor();
  await eventually('the list no longer has it', async () => (await row.count()) === 0);
});

test('a queued task revoked from its page never runs', async () => {
  const app = await testApp({ history: true });
  let ran = 0;
  const later = app.task('later', () => {
    ran++;
  });
  const call = await later.applyAsync([], { countdown: 2 });
  const url = await consoleFor(app);
  const page = await (await launchBrowser()).newPage();
  await page.goto(`${url}#/task/${encodeURIComponent(call.id)}?queue=${encodeURIComponent(app.defaultQueue)}`);
  await page.locator('[data-testid="task-state"]', { hasText: 'PENDING' }).waitFor();
  await page.locator('[data-testid="revoke"]').click();
  await page.locator('[data-testid="toast"]', { hasText: 'revoked' }).waitFor();
  await startWorker(app);
  await eventually('the revoked call settled', async () => {
    await page.reload();
    return (await page.locator('[data-testid="task-state"]').textContent()) === 'REVOKED';
  });
  assert.equal(ran, 0);
});

test("a chord's page draws its members, boxed as a group, and its callback, each with its state", async () => {
  const app = await testApp({ history: true });
  const add = app.task('add', (_ctx, a: number, b: number) => a + b);
  const total = app.task('total', (_ctx, values: number[]) => values.reduce((s, v) => s + v, 0));
  await startWorker(app, { concurrency: 4 });
  const sum = await chord(group(add.s(1, 1), add.s(2, 2), add.s(3, 3)), total.s()).delay();
  assert.equal(await sum.get({ timeout: 10_000 }), 12);
  const url = await consoleFor(app);
  const page = await (await launchBrowser()).newPage();
  await page.goto(`${url}#/task/${encodeURIComponent(sum.id)}?queue=${encodeURIComponent(app.defaultQueue)}`);
  const nodes = page.locator('[data-testid="workflow-node"]');
  await eventually('the workflow shows the members and the callback', async () => {
    await page.reload();
    await page.locator('[data-testid="task-state"]').waitFor();
    return (await nodes.count()) === 4;
  });
  const drawn = await nodes.evaluateAll((all) =>
    all.map((n) => ({
      text: n.textContent,
      state: n.getAttribute('data-state'),
      grouped: n.parentElement?.classList.contains('group') ?? false,
    })),
  );
  assert.deepEqual(
    drawn.filter((n) => n.grouped).map((n) => n.text),
    ['add SUCCESS', 'add SUCCESS', 'add SUCCESS'],
  );
  assert.deepEqual(
    drawn.filter((n) => !n.grouped),
    [{ text: 'total SUCCESS', state: 'SUCCESS', grouped: false }],
  );
  await shoot(page, 'console-chord.png');
});
