/**
 * The console's JSON API (docs/console.md) against real Redis and a real worker: what it shows, each
 * action, and who may do what. The page is tested in Chromium (console.test.ts).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { ConsoleApi } from '../../../worker/src/console/api.ts';
import { authFromEnv } from '../../../worker/src/console/auth.ts';
import type {
  Overview,
  RetryResponse,
  SeriesPoint,
  SeriesView,
  Session,
  TaskPage,
  TaskView,
} from '../../../worker/src/console/contract.ts';
import { startConsole } from '../../../worker/src/console/server.ts';
import { createLogger } from '../../../worker/src/observe/logger.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { taskfleet } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';

const ADMIN = 'admin-token-0123456789abcdef';
const VIEWER = 'viewer-token-0123456789abcdef';

/** A console on loopback over `app`, its log lines kept. */
async function consoleFor(app: Taskfleet, env: Record<string, string> = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('info', {}, (line) => lines.push(JSON.parse(line)));
  const server = await startConsole({
    api: new ConsoleApi(app),
    auth: authFromEnv(env),
    logger,
    port: 0,
    refreshMs: 200,
    pageDir: '/nonexistent/',
  });
  after(() => server.close());
  return { url: server.url, lines };
}

/** A client of the API: GETs and POSTs with its session's CSRF token, and a token when given. */
async function client(base: string, token?: string) {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(new URL(path, base), { headers });
    assert.equal(res.status, 200, `GET ${path}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  const session = await get<Session>('/api/session');
  const post = (path: string, body: unknown, extra: Record<string, string> = {}) =>
    fetch(new URL(path, base), {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json', 'x-taskfleet-csrf': session.csrf, ...extra },
      body: JSON.stringify(body),
    });
  return { get, post, session };
}

test('the overview shows the live worker and its queue, and /api/events pushes it as it changes', async () => {
  const app = await testApp({ history: true });
  const slow = app.task('slow', async () => new Promise((resolve) => setTimeout(() => resolve('ok'), 20)));
  await startWorker(app, { concurrency: 2 });
  const { url } = await consoleFor(app);
  const api = await client(url);
  assert.equal(api.session.role, 'admin');
  assert.equal(api.session.user, 'local');
  const overview = await api.get<Overview>('/api/overview');
  assert.equal(overview.workers.length, 1);
  assert.equal(overview.workers[0]?.queue, app.defaultQueue);
  assert.equal(overview.workers[0]?.concurrency, 2);
  assert.ok(overview.queues.some((q) => q.name === app.defaultQueue));

  const events = await fetch(new URL('/api/events', url));
  assert.equal(events.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const reader = (events.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  await Promise.all(Array.from({ length: 10 }, () => slow.delay()));
  let text = '';
  let processed = 0;
  while (processed < 10) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the event stream ended');
    text += value;
    for (const block of text.split('\n\n').slice(0, -1)) {
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      if (!block.startsWith('event: overview') || !data) continue;
      const pushed = JSON.parse(data.slice(6)) as Overview;
      processed = Math.max(processed, pushed.workers[0]?.processed.success ?? 0);
    }
    text = text.slice(text.lastIndexOf('\n\n') + 2);
  }
  await reader.cancel();
  assert.equal(processed, 10);
});

test('the graphs: /api/queues/{queue}/series has a point per refresh with rates by outcome and percentiles, and /api/events pushes each', async () => {
  const app = await testApp({ history: true });
  const slow = app.task('slow', async () => new Promise((resolve) => setTimeout(() => resolve('ok'), 20)));
  const bad = app.task('bad', { maxRetries: 0 }, () => {
    throw new Error('no');
  });
  await startWorker(app, { concurrency: 4 });
  const { url } = await consoleFor(app);
  const api = await client(url);
  const path = `/api/queues/${encodeURIComponent(app.defaultQueue)}/series`;
  const events = await fetch(new URL('/api/events', url));
  const reader = (events.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  await Promise.all([
    ...Array.from({ length: 20 }, () => slow.delay()),
    ...Array.from({ length: 3 }, () => bad.delay()),
  ]);
  const total = (series: SeriesView, outcome: string) =>
    series.points.reduce((sum, p, i) => {
      const before = series.points[i - 1];
      return before ? sum + (p.outcomesPerSecond[outcome] ?? 0) * ((p.at - before.at) / 1000) : sum;
    }, 0);
  // Rates times intervals add up to the calls made: 20 successes and 3 failures, once every worker's
  // counts have been seen twice.
  const series = await eventually('the series has counted every call', async () => {
    const s = await api.get<SeriesView>(path);
    return Math.round(total(s, 'success')) === 20 && Math.round(total(s, 'failure')) === 3 ? s : undefined;
  });
  assert.equal(series.queue, app.defaultQueue);
  assert.equal(series.intervalMs, 200);
  assert.equal(series.capacity, 1800);
  assert.ok(
    series.points.every((p, i) => i === 0 || p.at > (series.points[i - 1]?.at ?? 0)),
    'oldest first',
  );
  assert.ok(
    series.points.some((p) => (p.arrivalsPerSecond ?? 0) > 0),
    'arrivals per second from the broker’s counter',
  );
  const timed = series.points.filter((p) => p.duration);
  assert.ok(timed.length > 0, 'duration percentiles from the history');
  assert.ok(timed.every((p) => (p.duration?.p50 ?? 0) <= (p.duration?.p99 ?? 0)));
  assert.ok(
    timed.some((p) => (p.duration?.p99 ?? 0) >= 20),
    'the 20 ms calls are timed',
  );
  assert.ok(
    series.points.some((p) => p.wait !== undefined),
    'queue wait percentiles',
  );
  const overview = await api.get<Overview>('/api/overview');
  const row = overview.queues.find((q) => q.name === app.defaultQueue);
  assert.equal(typeof row?.arrivalsPerSecond, 'number');
  assert.equal(typeof row?.completionsPerSecond, 'number');

  let text = '';
  while (!/event: point\ndata: /.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the event stream ended');
    text += value;
  }
  await reader.cancel();
  const data = text.slice(text.indexOf('event: point\ndata: ') + 'event: point\ndata: '.length).split('\n')[0] ?? '';
  const pushed = JSON.parse(data) as SeriesPoint;
  assert.ok(pushed.queues[app.defaultQueue], 'the pushed point has the queue');
  const unknown = await api.get<SeriesView>('/api/queues/never-seen/series');
  assert.deepEqual(unknown.points, []);
  const bad400 = await fetch(new URL('/api/queues/bad%20name/series', url));
  assert.equal(bad400.status, 400);
});

test('a failed call is found as FAILURE, retried with its arguments, and the retry succeeds and names the call it retries', async () => {
  const app = await testApp({ history: true });
  const seen: number[] = [];
  const once = app.task('fails-once', { maxRetries: 0 }, (_ctx, n: number) => {
    seen.push(n);
    if (seen.length === 1) throw new Error('first time fails');
    return n * 2;
  });
  await startWorker(app);
  const first = await once.delay(21);
  await assert.rejects(first.get({ timeout: 10_000 }));
  const { url, lines } = await consoleFor(app);
  const api = await client(url);
  const q = encodeURIComponent(app.defaultQueue);
  const failed = await api.get<TaskPage>(`/api/queues/${q}/tasks?state=FAILURE`);
  assert.deepEqual(
    failed.entries.map((e) => [e.id, e.state]),
    [[first.id, 'FAILURE']],
  );
  const view = await api.get<TaskView>(`/api/tasks/${first.id}`);
  assert.equal(view.entry?.error?.message, 'first time fails');
  assert.match(view.entry?.error?.stack ?? '', /first time fails/);
  assert.deepEqual(view.entry?.args, [21]);

  const res = await api.post(`/api/queues/${q}/tasks/retry`, { ids: [first.id] });
  assert.equal(res.status, 200);
  const out = (await res.json()) as RetryResponse;
  assert.equal(out.retried.length, 1);
  assert.equal(out.retried[0]?.from, first.id);
  const retry = app.result(out.retried[0]?.id as string);
  assert.equal(await retry.get({ timeout: 10_000 }), 42);
  assert.deepEqual(seen, [21, 21]);
  const retried = await eventually('the retry is in the history', () => app.history.entry(app.defaultQueue, retry.id));
  assert.equal(retried.retryOf, first.id);
  assert.equal(retried.state, 'SUCCESS');
  const audit = lines.find((l) => l.msg === 'console action');
  assert.equal(audit?.action, 'retry');
  assert.equal(audit?.user, 'local');
  assert.equal(audit?.retried, 1);

  // A call that succeeded is not retried: it is reported as skipped, with why.
  const again = (await (await api.post(`/api/queues/${q}/tasks/retry`, { ids: [retry.id] })).json()) as RetryResponse;
  assert.equal(again.retried.length, 0);
  assert.match(again.skipped[0]?.why ?? '', /SUCCESS/);
});

test('a queued call revoked from the console never runs', async () => {
  const app = await testApp({ history: true });
  let ran = 0;
  const later = app.task('later', () => {
    ran++;
  });
  const call = await later.applyAsync([], { countdown: 300 });
  const { url } = await consoleFor(app);
  const api = await client(url);
  assert.equal((await api.post('/api/tasks/revoke', { ids: [call.id] })).status, 200);
  await startWorker(app);
  const entry = await eventually('the revoked call settled', () => app.history.entry(app.defaultQueue, call.id));
  assert.equal(entry.state, 'REVOKED');
  assert.equal(ran, 0);
});

test('dead letters are listed with their reason, requeued to run, and deleted; purge needs the queue named', async () => {
  const app = await testApp({ history: true });
  app.task('known', () => 'ok');
  const producer = new Taskfleet({ broker: app.brokerUrl, prefix: app.prefix, defaultQueue: app.defaultQueue });
  after(() => producer.close());
  const lost = await producer.signature('registered-later').delay();
  const doomed = await producer.signature('never-registered').delay();
  await startWorker(app);
  const { url } = await consoleFor(app);
  const api = await client(url);
  const q = encodeURIComponent(app.defaultQueue);
  type Letter = { id: string; reason: string; taskId?: string };
  const letters = await eventually('both calls are dead letters', async () => {
    const got = await api.get<Letter[]>(`/api/queues/${q}/dead-letters`);
    return got.length === 2 ? got : undefined;
  });
  assert.ok(
    letters.every((l) => l.reason === 'unknown-task'),
    JSON.stringify(letters),
  );
  const overview = await api.get<Overview>('/api/overview');
  assert.equal(overview.queues.find((x) => x.name === app.defaultQueue)?.deadLetters, 2);

  const later = letters.find((l) => l.taskId === lost.id) as Letter;
  const never = letters.find((l) => l.taskId === doomed.id) as Letter;
  app.task('registered-later', () => 'ran at last');
  const requeued = await api.post(`/api/queues/${q}/dead-letters/requeue`, { ids: [later.id] });
  assert.deepEqual(await requeued.json(), { requeued: 1 });
  assert.equal(await app.result(lost.id).get({ timeout: 10_000 }), 'ran at last');
  const deleted = await api.post(`/api/queues/${q}/dead-letters/delete`, { ids: [never.id] });
  assert.deepEqual(await deleted.json(), { deleted: 1 });
  assert.deepEqual(await api.get<Letter[]>(`/api/queues/${q}/dead-letters`), []);
  const bad = await api.post(`/api/queues/${q}/dead-letters/delete`, { ids: ['not-an-id'] });
  assert.equal(bad.status, 400);

  const wrong = await api.post(`/api/queues/${q}/purge`, { confirm: 'some-other-queue' });
  assert.equal(wrong.status, 400);
  assert.match(((await wrong.json()) as { error: { message: string } }).error.message, /queue's name/);
  const right = await api.post(`/api/queues/${q}/purge`, { confirm: app.defaultQueue });
  assert.deepEqual(await right.json(), { purged: 0 });
});

test('sign-in: tokens give their role, the read-only role gets 403 on every action, and CSRF is checked', async () => {
  const app = await testApp({ history: true });
  const { url } = await consoleFor(app, { TASKFLEET_CONSOLE_TOKEN: ADMIN, TASKFLEET_CONSOLE_READONLY_TOKEN: VIEWER });
  assert.equal((await fetch(new URL('/api/overview', url))).status, 401);
  assert.equal(
    (await fetch(new URL('/api/overview', url), { headers: { authorization: 'Bearer wrong-token-0123456789' } }))
      .status,
    401,
  );
  assert.equal((await fetch(new URL('/healthz', url))).status, 200);
  const viewer = await client(url, VIEWER);
  assert.equal(viewer.session.role, 'readonly');
  assert.equal((await viewer.get<Overview>('/api/overview')).workers.length, 0);
  const q = encodeURIComponent(app.defaultQueue);
  for (const [path, body] of [
    ['/api/tasks/revoke', { ids: ['x'] }],
    [`/api/queues/${q}/tasks/retry`, { ids: ['x'] }],
    [`/api/queues/${q}/dead-letters/requeue`, {}],
    [`/api/queues/${q}/dead-letters/delete`, {}],
    [`/api/queues/${q}/purge`, { confirm: app.defaultQueue }],
  ] as const) {
    const res = await viewer.post(path, body);
    assert.equal(res.status, 403, path);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'READ_ONLY');
  }
  const admin = await client(url, ADMIN);
  assert.equal(admin.session.role, 'admin');
  assert.notEqual(admin.session.csrf, viewer.session.csrf);
  const revoke = (extra: Record<string, string>) => admin.post('/api/tasks/revoke', { ids: ['some-id'] }, extra);
  assert.equal((await revoke({})).status, 200);
  assert.equal((await revoke({ 'x-taskfleet-csrf': viewer.session.csrf })).status, 403);
  assert.equal((await revoke({ origin: 'https://evil.example' })).status, 403);
  assert.equal((await revoke({ 'sec-fetch-site': 'cross-site' })).status, 403);
  assert.equal((await revoke({ 'content-type': 'text/plain' })).status, 403);
});

test('without sign-in the console answers only loopback hosts, and never shows the broker password', async () => {
  const app = await testApp();
  const { url } = await consoleFor(app);
  // A page on a DNS name rebound to 127.0.0.1 reaches the port with its own Host: refused.
  const rebound = await new Promise<number | undefined>((resolve, reject) =>
    request(new URL('/api/session', url), { headers: { host: 'attacker.example' } }, (res) => {
      res.resume();
      resolve(res.statusCode);
    })
      .on('error', reject)
      .end(),
  );
  assert.equal(rebound, 401);
  assert.equal((await fetch(new URL('/api/tasks/%E0%A4%A', url))).status, 400);
  const withPassword = new Taskfleet({
    broker: app.brokerUrl.replace('redis://', 'redis://:s3cret-pass@'),
    prefix: app.prefix,
  });
  const api = new ConsoleApi(withPassword);
  assert.doesNotMatch(api.broker, /s3cret-pass/);
});

test('taskfleet console refuses to listen beyond loopback without sign-in, before it connects', async () => {
  const run = await taskfleet(['console', '--host', '0.0.0.0', '--port', '0'], {
    TASKFLEET_BROKER: 'redis://127.0.0.1:1',
  });
  assert.equal(run.code, 1);
  assert.match(run.stderr, /no sign-in: set TASKFLEET_CONSOLE_TOKEN/);
});

test('the page is served from the build (npm run build), with a strict Content-Security-Policy', async () => {
  const app = await testApp();
  const server = await startConsole({ api: new ConsoleApi(app), auth: authFromEnv({}), logger: silent(), port: 0 });
  after(() => server.close());
  const page = await fetch(server.url);
  assert.equal(page.status, 200, 'run `npm run build` first');
  assert.match(await page.text(), /<script type="module" src="app.js"><\/script>/);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  const script = await fetch(new URL('/app.js', server.url));
  assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.match(await script.text(), /\/api\/session/);
});

function silent() {
  return createLogger('error', {}, () => {});
}
