/**
 * The `taskfleet` command as a user runs it: real child processes against the stack's Redis, run
 * with flags or with TASKFLEET_* variables, read by their exit codes and their output.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AsyncResult, type Taskfleet, TaskRevokedError, type WorkerHeartbeat } from 'taskfleet';
import { queueKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { testApp } from '../../support/app.ts';
import { runScript, spawnWorker, taskfleet, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

const fixture = fileURLToPath(new URL('./fixtures/cli.tasks.ts', import.meta.url));
const noApp = fileURLToPath(new URL('./fixtures/no-app.ts', import.meta.url));
const noTasks = fileURLToPath(new URL('./fixtures/no-tasks.tasks.ts', import.meta.url));
const warns = fileURLToPath(new URL('./fixtures/warns.tasks.ts', import.meta.url));
const writtenBroker = fileURLToPath(new URL('./fixtures/written-broker.tasks.ts', import.meta.url));
const writtenBrokerProducer = fileURLToPath(new URL('./fixtures/written-broker.producer.ts', import.meta.url));

/**
 * A test's own prefix and queue, the environment that points a child process at them, and the tasks
 * of fixtures/cli.tasks.ts by name (their handlers run only in the worker processes).
 */
async function setup() {
  const { url } = await useRedis();
  const app = await testApp();
  const queue = app.defaultQueue;
  const env = { TASKFLEET_BROKER: url, TASKFLEET_BACKEND: url, TASKFLEET_PREFIX: app.prefix, TASKFLEET_QUEUE: queue };
  const elsewhere = (): never => {
    throw new Error('this task runs in the worker processes');
  };
  const tasks = {
    add: app.task('add', (_ctx, _a: number, _b: number): number => elsewhere()),
    fail: app.task('fail', (_ctx, _message: string): never => elsewhere()),
    hold: app.task('hold', (_ctx, _gate: string): string => elsewhere()),
  };
  const redis = app.control.redis;
  return {
    app,
    url,
    queue,
    env,
    tasks,
    /** `taskfleet worker --app fixtures/cli.tasks.ts` on this test's prefix and queue. */
    worker: (args: string[] = []) => spawnWorker(['--app', fixture, '--metrics-port', '0', ...args], env),
    /** `taskfleet <args>` on this test's prefix. */
    cli: (args: string[]) => taskfleet(args, env),
    open: (gate: string) => redis.set(`${app.prefix}:gate:${gate}`, '1'),
    ran: () => redis.lrange(`${app.prefix}:ran`, 0, -1),
    aborted: () => redis.lrange(`${app.prefix}:aborted`, 0, -1),
  };
}

/** The live worker running task `id`, once its heartbeat says so. */
function runningOn(app: Taskfleet, id: string): Promise<WorkerHeartbeat> {
  return eventually(`a heartbeat showing task ${id} running`, async () =>
    (await app.control.workers()).find((w) => w.active.some((a) => a.id === id)),
  );
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** A worker configured with concurrency 3, prefetch 1, debug logs and metrics on `port` behaves so. */
async function assertConfigured(
  s: Awaited<ReturnType<typeof setup>>,
  worker: WorkerProcess,
  port: number,
  inspectEnv: Record<string, string>,
): Promise<void> {
  const started = await worker.log('worker started');
  assert.equal(started.queue, s.queue);
  assert.equal(started.concurrency, 3);
  assert.equal(started.prefetch, 1);
  assert.deepEqual(started.tasks, ['add', 'fail', 'hold']);

  const result = await s.tasks.add.delay(2, 3);
  assert.equal(await result.get({ timeout: 15_000 }), 5);
  assert.equal((await result.info())?.worker, started.worker, 'the worker on this prefix and queue ran it');
  // Only the debug level logs each task.
  const succeeded = await worker.log('task succeeded');
  assert.equal(succeeded.taskId, result.id);

  const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
  assert.equal(ready.status, 200);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(metrics, new RegExp(`taskfleet_tasks_total\\{queue="${s.queue}",task="add",outcome="success"\\} 1`));

  // inspect finds it through its own TASKFLEET_* variables, with no --app.
  const inspected = await taskfleet(['inspect', 'workers', '--json'], inspectEnv);
  assert.equal(inspected.code, 0, inspected.stderr);
  const workers = JSON.parse(inspected.stdout) as WorkerHeartbeat[];
  assert.deepEqual(
    workers.map((w) => ({ id: w.id, queue: w.queue, concurrency: w.concurrency, pid: w.pid })),
    [{ id: started.worker, queue: s.queue, concurrency: 3, pid: worker.pid }],
  );

  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
}

test('taskfleet worker takes its settings from flags', async () => {
  const s = await setup();
  const port = await freePort();
  // No TASKFLEET_* variable at all: everything comes from the command line.
  const worker = spawnWorker([
    '--app',
    fixture,
    '--broker',
    s.url,
    '--backend',
    s.url,
    '--prefix',
    s.app.prefix,
    '--queue',
    s.queue,
    '--concurrency',
    '3',
    '--prefetch',
    '1',
    '--metrics-port',
    String(port),
    '--log-level',
    'debug',
    '--visibility-timeout',
    '5000',
    '--shutdown-grace',
    '5000',
  ]);
  await assertConfigured(s, worker, port, { TASKFLEET_BROKER: s.url, TASKFLEET_PREFIX: s.app.prefix });
});

test('taskfleet worker takes the same settings from TASKFLEET_* variables', async () => {
  const s = await setup();
  const port = await freePort();
  const worker = spawnWorker([], {
    TASKFLEET_APP: fixture,
    TASKFLEET_BROKER: s.url,
    TASKFLEET_BACKEND: s.url,
    TASKFLEET_PREFIX: s.app.prefix,
    TASKFLEET_QUEUE: s.queue,
    TASKFLEET_CONCURRENCY: '3',
    TASKFLEET_PREFETCH: '1',
    TASKFLEET_METRICS_PORT: String(port),
    TASKFLEET_LOG_LEVEL: 'debug',
    TASKFLEET_VISIBILITY_TIMEOUT: '5000',
    TASKFLEET_SHUTDOWN_GRACE: '5000',
  });
  await assertConfigured(s, worker, port, { TASKFLEET_BROKER: s.url, TASKFLEET_PREFIX: s.app.prefix });
});

test('a producer and a worker importing the same tasks module, its broker written in it, both use TASKFLEET_BROKER', async () => {
  const s = await setup();
  const { env } = s;
  // The module writes redis://127.0.0.1:1/0, where nothing listens, as the README's tasks.ts writes localhost.
  const worker = spawnWorker(['--app', writtenBroker, '--metrics-port', '0'], env);
  assert.equal((await worker.log('connecting')).broker, s.url);
  await worker.log('worker started');
  const producer = await runScript(writtenBrokerProducer, env, 30_000);
  assert.equal(producer.code, 0, producer.stderr);
  assert.deepEqual(JSON.parse(producer.stdout), { msg: 'result', value: 5, broker: s.url, backend: s.url });
  // And a flag wins over the variable, with --app or without.
  const nowhere = { ...env, TASKFLEET_BROKER: 'redis://127.0.0.1:1/0', TASKFLEET_BACKEND: 'redis://127.0.0.1:1/0' };
  for (const app of [['--app', writtenBroker], []]) {
    const purge = await taskfleet(['purge', s.queue, ...app, '--broker', s.url], nowhere);
    assert.equal(purge.code, 0, purge.stderr);
  }
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
});

test('taskfleet worker writes a process warning as a JSON log line; its heartbeat names the pod TASKFLEET_POD_NAME gives', async () => {
  const s = await setup();
  const { env } = s;
  // Longer than the 63 characters a pod's hostname is cut to.
  const pod = `shop-emails-workers-${'x'.repeat(50)}-7d9f8c6b5d-k2x4q`;
  const worker = spawnWorker(['--app', warns, '--metrics-port', '0'], { ...env, TASKFLEET_POD_NAME: pod });
  const warning = await worker.log('a dependency of the tasks module warns');
  assert.deepEqual(
    { level: warning.level, warning: warning.warning, code: warning.code },
    { level: 'warn', warning: 'DependencyWarning', code: 'DEP_TEST' },
  );
  const started = await worker.log('worker started');
  assert.ok(String(started.worker).startsWith(`${pod}-`), String(started.worker));
  const heartbeat = await eventually('the worker’s heartbeat', async () =>
    (await s.app.control.workers()).find((w) => w.id === started.worker),
  );
  assert.equal(heartbeat.hostname, pod);
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
  assert.deepEqual(worker.text, [], 'every line the worker printed is a JSON log line');
});

test('inspect workers|active|stats shows the worker and the task it is running', async () => {
  const s = await setup();
  const worker = s.worker(['--concurrency', '2']);
  const id = await worker.id();
  assert.equal(await (await s.tasks.add.delay(1, 1)).get({ timeout: 15_000 }), 2);
  const held = await s.tasks.hold.delay('inspect');
  // A heartbeat that shows both the running task and the finished one.
  await eventually('a heartbeat with the held task and one success', async () => {
    const [w] = await s.app.control.workers();
    return w?.active.some((a) => a.id === held.id) && w.processed.success === 1;
  });

  const workers = await s.cli(['inspect', 'workers']);
  assert.equal(workers.code, 0, workers.stderr);
  assert.match(workers.stdout, new RegExp(`^${id}  queue=${s.queue}  concurrency=2  active=1  up \\d+s$`, 'm'));
  const workersJson = JSON.parse((await s.cli(['inspect', 'workers', '--json'])).stdout) as WorkerHeartbeat[];
  assert.equal(workersJson.length, 1);
  assert.equal(workersJson[0]?.id, id);
  assert.deepEqual(
    workersJson[0]?.active.map((a) => ({ id: a.id, task: a.task, attempt: a.attempt })),
    [{ id: held.id, task: 'hold', attempt: 1 }],
  );

  const active = await s.cli(['inspect', 'active']);
  assert.equal(active.code, 0, active.stderr);
  assert.match(active.stdout, new RegExp(`^${id}  hold  ${held.id}  attempt 1  running \\d+\\.\\ds$`, 'm'));
  const activeJson = JSON.parse((await s.cli(['inspect', 'active', '--json'])).stdout) as Record<string, unknown>[];
  assert.deepEqual(
    activeJson.map(({ worker, id, task, attempt }) => ({ worker, id, task, attempt })),
    [{ worker: id, id: held.id, task: 'hold', attempt: 1 }],
  );

  const stats = await s.cli(['inspect', 'stats']);
  assert.equal(stats.code, 0, stats.stderr);
  assert.match(stats.stdout, new RegExp(`^${id}  active=1 reserved=0  success=1$`, 'm'));
  assert.deepEqual(JSON.parse((await s.cli(['inspect', 'stats', '--json'])).stdout), [
    { worker: id, queue: s.queue, processed: { success: 1 }, active: 1, reserved: 0 },
  ]);

  await s.open('inspect');
  assert.equal(await held.get({ timeout: 15_000 }), 'inspect opened');
  await eventually('a heartbeat with nothing running', async () => {
    const { stdout } = await s.cli(['inspect', 'active']);
    return stdout.trim() === 'no task is running';
  });

  const what = await s.cli(['inspect']);
  assert.equal(what.code, 2);
  assert.match(what.stderr, /inspect what\? active, stats or workers/);
});

test('result <id> prints the state and the result or error; --wait waits for it', async () => {
  const s = await setup();
  // Asked before any worker runs: --wait holds the command until the result is stored.
  const sum = await s.tasks.add.delay(20, 22);
  const waiting = s.cli(['result', sum.id, '--wait', '20000']);
  const worker = s.worker();
  const waited = await waiting;
  assert.equal(waited.code, 0, waited.stderr);
  assert.equal(waited.stdout, `${sum.id}  add  SUCCESS  attempts 1\nresult: 42\n`);

  const json = await s.cli(['result', sum.id, '--json']);
  assert.equal(json.code, 0, json.stderr);
  const record = JSON.parse(json.stdout) as Record<string, unknown>;
  assert.equal(record.state, 'SUCCESS');
  assert.equal(record.result, 42);
  assert.equal(record.worker, await worker.id());

  const failed = await s.tasks.fail.delay('the card was declined');
  await assert.rejects(failed.get({ timeout: 15_000 }), /the card was declined/);
  const failure = await s.cli(['result', failed.id]);
  assert.equal(failure.stdout, `${failed.id}  fail  FAILURE  attempts 1\nerror: Error: the card was declined\n`);

  const unknown = await s.cli(['result', 'no-such-task']);
  assert.equal(unknown.code, 0, unknown.stderr);
  assert.equal(unknown.stdout, 'no-such-task  PENDING (unknown, not started, or expired)\n');
  assert.deepEqual(JSON.parse((await s.cli(['result', 'no-such-task', '--json'])).stdout), {
    id: 'no-such-task',
    state: 'PENDING',
  });
});

test('revoke <id> of a queued task: it ends REVOKED and never runs', async () => {
  const s = await setup();
  // Revoked before any worker runs: a worker loads the revoked set when it starts.
  const early = await s.tasks.add.delay(1, 1);
  const out = await s.cli(['revoke', early.id]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, 'revoked 1 task\n');
  s.worker(['--concurrency', '1', '--prefetch', '0']);
  await assert.rejects(early.get({ timeout: 15_000 }), TaskRevokedError);

  // Revoked while it waits behind a busy worker (one slot, nothing prefetched): the worker hears of it.
  const held = await s.tasks.hold.delay('busy');
  await runningOn(s.app, held.id);
  const queued = await s.tasks.add.delay(2, 2);
  const kept = await s.tasks.add.delay(3, 3);
  assert.equal((await s.cli(['revoke', queued.id])).stdout, 'revoked 1 task\n');
  await s.open('busy');
  assert.equal(await kept.get({ timeout: 15_000 }), 6);
  await assert.rejects(queued.get({ timeout: 15_000 }), TaskRevokedError);
  for (const revoked of [early, queued]) {
    const record = await revoked.info();
    assert.equal(record?.state, 'REVOKED');
    assert.equal(record?.error?.message, `task ${revoked.id} was revoked`);
  }
  assert.deepEqual(await s.ran(), [held.id, kept.id], 'the revoked tasks never ran');
});

test('revoke --terminate of a running task aborts it; the worker goes on', async () => {
  const s = await setup();
  const worker = s.worker();
  const held = await s.tasks.hold.delay('never-opened');
  await runningOn(s.app, held.id);

  const out = await s.cli(['revoke', '--terminate', held.id]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, 'revoked 1 task (running ones are aborted)\n');
  await assert.rejects(held.get({ timeout: 15_000 }), TaskRevokedError);
  const record = await held.info();
  assert.equal(record?.state, 'REVOKED');
  assert.match(String(record?.error?.message), /terminated/);
  // The handler notes the abort itself, after the worker has recorded REVOKED.
  await eventually("the handler's signal to fire", async () => (await s.aborted()).includes(held.id));

  assert.equal(await (await s.tasks.add.delay(3, 4)).get({ timeout: 15_000 }), 7);
  assert.ok(worker.running);
});

test('purge <queue> deletes the waiting tasks, ready and delayed, and prints how many', async () => {
  const s = await setup();
  const purged: AsyncResult<number>[] = [];
  for (let i = 0; i < 5; i++) purged.push(await s.tasks.add.delay(i, i));
  purged.push(await s.tasks.add.applyAsync([9, 9], { countdown: 60_000 }));
  const out = await s.cli(['purge', s.queue]);
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.stdout, `purged 6 messages from ${s.queue}\n`);
  const backlog = await s.app.broker.backlog(s.queue);
  assert.deepEqual([backlog.ready, backlog.delayed, backlog.inFlight], [0, 0, 0]);

  s.worker();
  const after = await s.tasks.add.delay(1, 2);
  assert.equal(await after.get({ timeout: 15_000 }), 3);
  assert.deepEqual(await s.ran(), [after.id], 'no purged task ran');
  for (const result of purged) assert.equal(await result.state(), 'PENDING');

  assert.equal((await s.cli(['purge', s.queue])).stdout, `purged 0 messages from ${s.queue}\n`);
});

test('dlq list shows dead letters with their reason; dlq requeue puts them back on the queue', async () => {
  const s = await setup();
  const keys = queueKeys(s.app.prefix, s.queue);
  const redis = s.app.control.redis;
  const worker = s.worker();
  await redis.xadd(keys.lanes[1], '*', 'm', '{"v":1,"id":"torn');
  const missing = s.app.task('not_on_the_worker', () => null);
  const unknown = await missing.delay();
  await eventually('two dead letters', async () => (await s.app.broker.deadLetters(s.queue)).length === 2);

  const list = await s.cli(['dlq', 'list', s.queue]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^\S+ {2}malformed {2}\? {3}delivered 1x\n {4}.+$/m);
  assert.match(
    list.stdout,
    new RegExp(
      `^\\S+  unknown-task  not_on_the_worker ${unknown.id}  delivered 1x\\n {4}no task named "not_on_the_worker" is registered on this worker \\(it runs: add, fail, hold\\)$`,
      'm',
    ),
  );
  const letters = JSON.parse((await s.cli(['dlq', 'list', s.queue, '--json'])).stdout) as {
    id: string;
    reason: string;
    raw: string;
    taskId?: string;
  }[];
  assert.deepEqual(
    letters.map((l) => l.reason),
    ['malformed', 'unknown-task'],
  );
  assert.equal(letters[0]?.raw, '{"v":1,"id":"torn');
  const limited = JSON.parse((await s.cli(['dlq', 'list', s.queue, '--json', '--limit', '1'])).stdout) as unknown[];
  assert.equal(limited.length, 1);

  // With no worker to take them, what is requeued stays on the queue to be seen.
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
  const one = await s.cli(['dlq', 'requeue', s.queue, letters[1]?.id as string]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout, `requeued 1 dead letter onto ${s.queue}\n`);
  const left = JSON.parse((await s.cli(['dlq', 'list', s.queue, '--json'])).stdout) as { reason: string }[];
  assert.deepEqual(
    left.map((l) => l.reason),
    ['malformed'],
  );
  const all = await s.cli(['dlq', 'requeue', s.queue]);
  assert.equal(all.stdout, `requeued 1 dead letter onto ${s.queue}\n`);
  assert.equal((await s.cli(['dlq', 'list', s.queue])).stdout, `no dead letters in ${s.queue}\n`);
  const lane = (await redis.xrange(keys.lanes[1], '-', '+')) as [string, string[]][];
  assert.deepEqual(
    lane.map(([, fields]) => fields),
    [
      ['m', letters[1]?.raw],
      ['m', letters[0]?.raw],
    ],
  );
  assert.equal(JSON.parse(letters[1]?.raw as string).id, unknown.id);
  assert.equal((await s.app.broker.backlog(s.queue)).ready, 2);
});

test('history <queue> lists the calls a worker finished, newest first, filtered; history <queue> <id> shows one', async () => {
  const s = await setup();
  const worker = spawnWorker(['--app', fixture, '--metrics-port', '0'], { ...s.env, TASKFLEET_HISTORY: 'on' });
  const ok = await s.tasks.add.delay(2, 3);
  assert.equal(await ok.get({ timeout: 15_000 }), 5);
  const bad = await s.tasks.fail.delay('no luck');
  await assert.rejects(bad.get({ timeout: 15_000 }), /no luck/);
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());

  const all = await s.cli(['history', s.queue]);
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0] as string, new RegExp(`^\\S+Z  FAILURE  fail ${bad.id}  attempt 1, \\d+ ms  Error: no luck$`));
  assert.match(lines[1] as string, new RegExp(`^\\S+Z  SUCCESS  add ${ok.id}  attempt 1, \\d+ ms$`));

  const failures = await s.cli(['history', s.queue, '--state', 'failure', '--json']);
  const page = JSON.parse(failures.stdout) as { entries: { id: string; args: unknown[] }[]; next?: string };
  assert.deepEqual(
    page.entries.map((e) => [e.id, e.args]),
    [[bad.id, ['no luck']]],
  );
  assert.equal(page.next, undefined);
  assert.equal(
    (await s.cli(['history', s.queue, '--task', 'hold'])).stdout,
    `nothing in the history of ${s.queue} that matches\n`,
  );

  const one = await s.cli(['history', s.queue, ok.id]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /^args: \[2,3\]$/m);
  assert.match(one.stdout, /^result: 5$/m);
  const missing = await s.cli(['history', s.queue, 'no-such-id']);
  assert.equal(missing.stdout, `no-such-id: not in the history of ${s.queue} (never run here, or no longer kept)\n`);
  const wrong = await s.cli(['history', s.queue, '--state', 'lost']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /state must be one of SUCCESS, FAILURE, RETRY, REVOKED, not "LOST"/);
});

test('dlq list and result print what producers wrote escaped: no terminal escape reaches the terminal', async () => {
  const s = await setup();
  const keys = queueKeys(s.app.prefix, s.queue);
  const redis = s.app.control.redis;
  // A task name that would retitle the terminal, clear it, set red with an 8-bit CSI and reverse the text.
  const hostile = 'evil\u001b]0;pwned\u0007\u001b[2J\u009b31m\u202eexe';
  const call = { ...createEnvelope({ task: hostile, args: [], queue: s.queue }), id: `id-\u001b[1m-${randomUUID()}` };
  await redis.xadd(keys.lanes[1], '*', 'm', JSON.stringify(call));
  const oversize = JSON.stringify(createEnvelope({ task: 'add', args: ['x'.repeat(1_100_000)], queue: s.queue }));
  await redis.xadd(keys.lanes[1], '*', 'm', oversize);
  s.worker();
  await eventually('two dead letters', async () => (await s.app.broker.deadLetters(s.queue)).length === 2);

  // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
  const unprintable = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
  const list = await s.cli(['dlq', 'list', s.queue]);
  assert.equal(list.code, 0, list.stderr);
  assert.doesNotMatch(list.stdout, unprintable);
  assert.ok(list.stdout.includes('evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eexe'), list.stdout);
  assert.ok(list.stdout.includes('id-\\x1b[1m-'), list.stdout);
  // The oversize one is kept as its head: the listing says how much of how much, and its hash.
  const size = Buffer.byteLength(oversize);
  const sha = createHash('sha256').update(oversize).digest('hex');
  assert.match(
    list.stdout,
    new RegExp(`too-large  add \\S+  delivered 1x  kept: its first 4096 of ${size} bytes, sha256 ${sha}`),
  );
  const json = await s.cli(['dlq', 'list', s.queue, '--json']);
  assert.doesNotMatch(json.stdout, unprintable);
  const letters = JSON.parse(json.stdout) as { task?: string; taskId?: string; size: number; sha256?: string }[];
  assert.equal(letters.find((l) => l.taskId === call.id)?.task, hostile, 'the JSON is the same JSON');
  // Settled concurrently: in either order.
  assert.deepEqual(
    letters.map((l) => [l.size, l.sha256]).sort(),
    [
      [Buffer.byteLength(JSON.stringify(call)), undefined],
      [size, sha],
    ].sort(),
  );

  const result = await s.cli(['result', call.id]);
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stdout, unprintable);
  assert.match(
    result.stdout,
    /FAILURE {2}attempts 1\nerror: DeadLettered: dead-lettered \(unknown-task\): no task named "evil\\u001b\]0;/,
  );
});

test('taskfleet worker never prints its broker password, in the userinfo or a ?password= parameter', async () => {
  // Nothing listens on port 1: the worker logs that it is connecting, then that it cannot reach it yet.
  const url = 'redis://tenant:s3cret-userinfo@127.0.0.1:1/0?password=s3cret-query&db=0';
  const worker = spawnWorker(['--app', fixture, '--metrics-port', '0'], {
    TASKFLEET_BROKER: url,
    TASKFLEET_BACKEND: url,
  });
  const connecting = await worker.log('connecting');
  assert.equal(connecting.broker, 'redis://tenant:***@127.0.0.1:1/0?password=***&db=0');
  assert.equal(connecting.backend, 'redis://tenant:***@127.0.0.1:1/0?password=***&db=0');
  const waiting = await worker.log(/cannot reach the broker yet/);
  assert.equal(waiting.broker, 'redis://tenant:***@127.0.0.1:1/0?password=***&db=0');
  worker.signal('SIGTERM');
  await worker.exit();
  const output = [...worker.text, ...worker.logs.map((l) => JSON.stringify(l))].join('\n');
  assert.doesNotMatch(output, /s3cret/);
});

test('usage errors exit 2 with a message that says what to do', async () => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['worker'], /taskfleet worker needs --app <module> \(or TASKFLEET_APP\)/],
    [['worker', '--app', fixture, '--concurrency', 'abc'], /--concurrency must be an integer ≥ 1, not "abc"/],
    [['worker', '--app', fixture, '--concurrency', '0'], /--concurrency must be an integer ≥ 1, not "0"/],
    [['worker', '--app', fixture, '--bogus'], /Unknown option '--bogus'/],
    [['result'], /result needs a task id/],
    [['dlq', 'show', 'q'], /dlq list <queue> \| dlq requeue <queue> \[<id>\.\.\.\]/],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await taskfleet(args);
    assert.equal(code, 2, `taskfleet ${args.join(' ')}: ${stdout}${stderr}`);
    assert.match(stderr, message);
    assert.match(stderr, /Run `taskfleet --help` for usage\.$/m);
  }
  const bare = await taskfleet([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stdout, /^Usage:$/m);
  const help = await taskfleet(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /taskfleet worker --app <module> \[options\]/);
});

test('a command that cannot reach Redis exits 1 and says which setting to check', async () => {
  // Nothing listens here: the connection is refused, which the app's own connections would retry forever.
  const nowhere = `redis://127.0.0.1:${await freePort()}`;
  const refused = `\\(connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+\\): is Redis running there\\?`;
  const purge = await taskfleet(['purge', 'q', '--broker', nowhere]);
  assert.equal(purge.code, 1, purge.stdout);
  assert.match(
    purge.stderr,
    new RegExp(
      `^taskfleet: cannot reach the broker at ${nowhere} ${refused} Set it with --broker \\(TASKFLEET_BROKER\\)\\.$`,
      'm',
    ),
  );
  const inspect = await taskfleet(['inspect', 'workers'], { TASKFLEET_BROKER: nowhere });
  assert.equal(inspect.code, 1, inspect.stdout);
  assert.match(
    inspect.stderr,
    new RegExp(`cannot reach the result backend at ${nowhere} ${refused} Set it with --backend or --broker`),
  );

  // The result backend is all `result` needs: a broker that is not there does not matter.
  const s = await setup();
  const sum = await s.tasks.add.delay(1, 2);
  s.worker();
  await sum.get({ timeout: 15_000 });
  const result = await taskfleet(['result', sum.id, '--backend', s.url, '--broker', nowhere, '--prefix', s.app.prefix]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /SUCCESS/);
});

test('a worker whose --app exports no Taskfleet app exits 1 and says what to export', async () => {
  const s = await setup();
  const worker = spawnWorker(['--app', noApp], s.env);
  assert.deepEqual(await worker.exit(), { code: 1, signal: null });
  assert.match(
    worker.output(),
    /taskfleet: --app .*no-app\.ts exports no Taskfleet app: add `export const app = new Taskfleet\(\{\.\.\.\}\)`/,
  );

  const missing = spawnWorker(['--app', './no/such/module.ts'], s.env);
  assert.deepEqual(await missing.exit(), { code: 1, signal: null });
  assert.match(missing.output(), /taskfleet: could not import --app \.\/no\/such\/module\.ts: Cannot find module/);
});

test('a worker whose --app registers no tasks exits 1 and says why, before it takes any call', async () => {
  const s = await setup();
  const call = await s.tasks.add.delay(1, 2);
  const worker = spawnWorker(['--app', noTasks, '--metrics-port', '0'], s.env);
  assert.deepEqual(await worker.exit(), { code: 1, signal: null });
  assert.match(
    worker.output(),
    new RegExp(
      `taskfleet: the app registers no tasks, so this worker would dead-letter every call on queue "${s.queue}" as unknown-task: define them with app\\.task\\('name', handler\\)`,
    ),
  );
  assert.equal((await s.app.broker.backlog(s.queue)).ready, 1, 'the call waits for a worker that runs it');
  assert.equal(await call.state(), 'PENDING');
});

test('an --app that fails to import says where: file:line:column of a syntax error, the line of a throw, and what to write for an enum', async () => {
  const s = await setup();
  const dir = await mkdtemp(join(tmpdir(), 'taskfleet-app-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const modules = {
    'syntax.ts': 'export const app = 1;\nconst x = ;\n',
    'throws.ts': 'function load(): never {\n  throw new Error("no SMTP_URL set");\n}\nload();\n',
    'enum.ts': 'export const app = 1;\nexport enum Color {\n  Red,\n}\n',
  };
  for (const [name, text] of Object.entries(modules)) await writeFile(join(dir, name), text);
  const failure = async (name: string) => {
    const worker = spawnWorker(['--app', join(dir, name), '--metrics-port', '0'], s.env);
    assert.deepEqual(await worker.exit(), { code: 1, signal: null }, worker.output());
    return worker.output();
  };
  const at = (name: string) => join(dir, name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(
    await failure('syntax.ts'),
    new RegExp(`could not import --app ${at('syntax.ts')}: ${at('syntax.ts')}:2:11: Expression expected`),
  );
  assert.match(
    await failure('throws.ts'),
    new RegExp(`could not import --app ${at('throws.ts')}: no SMTP_URL set \\(at ${at('throws.ts')}:2:9\\)`),
  );
  const enumFailure = await failure('enum.ts');
  assert.match(enumFailure, new RegExp(`${at('enum.ts')}:2:1: TypeScript enum is not supported in strip-only mode`));
  assert.match(
    enumFailure,
    /only TypeScript that erases: write a const object for an enum .*"erasableSyntaxOnly": true/,
  );
});

test('a second worker on a metrics port in use exits 1 naming the port and the flag to change', async () => {
  const s = await setup();
  const port = await freePort();
  const first = s.worker(['--metrics-port', String(port)]);
  await first.log('worker started');
  const second = s.worker(['--metrics-port', String(port)]);
  assert.deepEqual(await second.exit(), { code: 1, signal: null });
  assert.match(
    second.output(),
    new RegExp(
      `taskfleet: the metrics port ${port} is in use \\(another worker on this machine\\?\\): give each worker its own with --metrics-port \\(TASKFLEET_METRICS_PORT; metricsPort in code\\), or --metrics-port 0 to serve no metrics`,
    ),
  );
  first.signal('SIGTERM');
  assert.deepEqual(await first.exit(), { code: 0, signal: null }, first.output());
});

test('SIGTERM: the worker takes no new task, finishes the running one, then exits 0', async () => {
  const s = await setup();
  const worker = s.worker(['--shutdown-grace', '60000']);
  const id = await worker.id();
  const held = await s.tasks.hold.delay('graceful');
  await runningOn(s.app, held.id);

  worker.signal('SIGTERM');
  await worker.log(/^SIGTERM: shutting down gracefully/);
  const later = await s.tasks.add.delay(5, 5);
  // The held task cannot finish before the gate opens, so a worker still running here is waiting for it.
  assert.ok(worker.running, `it waits for the running task:\n${worker.output()}`);
  await s.open('graceful');
  assert.equal(await held.get({ timeout: 15_000 }), 'graceful opened');
  assert.equal((await held.info())?.worker, id);
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());

  assert.equal(await later.state(), 'PENDING', 'a task sent during shutdown is left for the next worker');
  assert.deepEqual(await s.ran(), [held.id]);
  const backlog = await s.app.broker.backlog(s.queue);
  assert.deepEqual([backlog.ready, backlog.inFlight], [1, 0]);
  assert.deepEqual(await s.app.control.workers(), [], 'it left the fleet');
});

test('a second SIGTERM stops the worker at once; its running task completes on another worker', async () => {
  const s = await setup();
  // A long visibility timeout: the task can only move this soon if it is handed back, not recovered.
  const first = s.worker(['--shutdown-grace', '60000', '--visibility-timeout', '600000']);
  const firstId = await first.id();
  const held = await s.tasks.hold.delay('handed-back');
  assert.equal((await runningOn(s.app, held.id)).id, firstId);
  const second = s.worker(['--visibility-timeout', '600000']);
  const secondId = await second.id();

  first.signal('SIGTERM');
  await first.log(/^SIGTERM: shutting down gracefully/);
  first.signal('SIGTERM');
  // The gate is still closed, so the task cannot have finished: the worker stopped without it.
  assert.deepEqual(await first.exit(), { code: 0, signal: null }, first.output());
  assert.equal(
    (await first.log('grace period over: aborting running calls and handing them back')).count,
    1,
    first.output(),
  );
  assert.equal(await held.state(), 'PENDING', 'the first worker recorded no outcome');

  const now = await runningOn(s.app, held.id);
  assert.equal(now.id, secondId);
  await s.open('handed-back');
  assert.equal(await held.get({ timeout: 15_000 }), 'handed-back opened');
  const record = await held.info();
  assert.equal(record?.worker, secondId);
  assert.equal(record?.attempts, 1, 'handing back is not a retry');
  assert.deepEqual(await s.ran(), [held.id, held.id]);
});
