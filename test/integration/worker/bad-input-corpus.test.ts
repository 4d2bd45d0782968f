/**
 * A corpus of bad input against a real `taskfleet worker` on a Redis of its own (noeviction, a
 * maxmemory): malformed, oversize and deeply nested messages, hostile flow parts, 2,000 unique unknown
 * task names, results over maxResultBytes, a chain whose first result is 2 MiB, and a task that kills
 * its worker. Whatever arrives, the worker stays up, each message ends as a dead letter with a reason or
 * a FAILURE result, nothing runs more than maxDeliveries times, the queue returns to nothing in flight,
 * and what Redis holds afterwards is bounded.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { chain, chord, type Envelope, Taskfleet } from 'taskfleet';
import { queueKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { freePort } from '../../stack/process.ts';
import { spawnWorker, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { privateRedis, sample } from '../../support/worker-tools.ts';

const fixture = fileURLToPath(new URL('./fixtures/bad-input.tasks.ts', import.meta.url));
const MiB = 1024 * 1024;
const MAX_DELIVERIES = 3;
const MAX_DEAD_LETTERS = 1000;
const MAX_RESULT_BYTES = 4 * MiB;
const UNKNOWN_NAMES = 2000;
/** What the dead-letter stream may hold over its cap: Redis trims whole nodes (stream-node-max-entries). */
const STREAM_NODE_ENTRIES = 100;
/**
 * What Redis may hold after the corpus, over what it held before: the capped dead letters (each a few
 * hundred bytes, a head of 4 KiB at most), the FAILURE results of the 2,000 unknown calls and the run
 * counts. Measured at about 2.5 MiB; without the bounds, the dead-letter stream alone kept whole copies.
 */
const MEMORY_BOUND = 8 * MiB;

test('a bad-input corpus: the worker stays up, every message ends dead-lettered or FAILURE, none runs more than maxDeliveries times, Redis stays bounded', async () => {
  const server = await privateRedis();
  const { url } = server.endpoint;
  const admin = new Redis(url);
  after(() => admin.disconnect());
  // A broker as it should be run: nothing evicted. A flood that filled it would stop every queue.
  await admin.config('SET', 'maxmemory-policy', 'noeviction');
  await admin.config('SET', 'maxmemory', String(256 * MiB));
  const prefix = 'corpus';
  const queue = 'bad';
  const env = {
    TASKFLEET_BROKER: url,
    TASKFLEET_BACKEND: url,
    TASKFLEET_PREFIX: prefix,
    TASKFLEET_QUEUE: queue,
    TASKFLEET_VISIBILITY_TIMEOUT: '2000',
    TASKFLEET_MAX_DELIVERIES: String(MAX_DELIVERIES),
    TASKFLEET_MAX_DEAD_LETTERS: String(MAX_DEAD_LETTERS),
    TASKFLEET_MAX_RESULT_BYTES: String(MAX_RESULT_BYTES),
  };
  const startWorker = async () => {
    const port = await freePort();
    const worker = spawnWorker(['--app', fixture, '--metrics-port', String(port)], env);
    await worker.log('worker started');
    return { worker, metrics: `http://127.0.0.1:${port}` };
  };
  // The producer: the same names as the fixture's tasks, whose handlers run only in the worker.
  const app = new Taskfleet({ broker: url, backend: url, prefix, defaultQueue: queue });
  after(() => app.close());
  const elsewhere = (): never => {
    throw new Error('this task runs in the worker process');
  };
  const echo = app.task('echo', (_ctx, _value: unknown): unknown => elsewhere());
  const big = app.task('big', (_ctx, _bytes: number): string => elsewhere());
  const poison = app.task('poison', (): null => elsewhere());
  const runs = async () => (await admin.hgetall(`${prefix}:runs`)) as Record<string, string>;

  let { worker, metrics } = await startWorker();
  await app.broker.backlog(queue); // connected, so the baseline includes the app's own connections
  const memory = async () => Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
  const before = await memory();

  // Written straight onto the queue's stream, as a buggy or hostile producer would.
  const lane = queueKeys(prefix, queue).lanes[1];
  const write = (text: string) => admin.xadd(lane, '*', 'm', text);
  const call = (task: string, extra: Partial<Envelope> | Record<string, unknown> = {}) =>
    ({ ...createEnvelope({ task, args: [], queue }), ...extra }) as Envelope;
  const step = (extra: Record<string, unknown>) => [{ task: 'echo', args: [], ...extra }];
  let nested: unknown = [{ task: 'echo', args: [] }];
  for (let i = 0; i < 40; i++) nested = [{ kind: 'group', id: `g${i}`, members: [nested] }];

  const malformed = [
    'not JSON {',
    '{"v":1,"id":"cut short',
    '[]',
    'null',
    JSON.stringify({ v: 1, id: 'fields missing' }),
    JSON.stringify(call('echo', { chain: nested as Envelope['chain'] })),
    // Hostile flow parts: each would have been run, then failed to start what follows, again and again.
    JSON.stringify(call('echo', { chain: step({ options: { priority: 12 } }) })),
    JSON.stringify(call('echo', { chain: step({ queue: '../../other' }) })),
    JSON.stringify(call('echo', { chord: { id: 'c', index: 0, queue: 'a b' } })),
    JSON.stringify(call('echo', { link: [step({ queue: 'no/where' })] })),
    JSON.stringify(call('echo', { linkError: [step({ options: { priority: -1 } })] })),
    // The two stuck deliveries: an unknown task with an invalid errback, an expired call with an
    // invalid chord slot.
    JSON.stringify(call('nobody', { linkError: [step({ options: { priority: 99 } })] })),
    JSON.stringify(call('echo', { expires: Date.now() - 1000, chord: { id: 'c', index: 0, queue: '' } })),
  ];
  for (const text of malformed) await write(text);
  await admin.xadd(lane, '*', 'not-m', 'an entry without a message');
  await write(JSON.stringify({ ...call('echo'), v: 2 }));
  await write(JSON.stringify(call('echo', { args: ['x'.repeat(2 * MiB)] })));
  // Arguments nested 20,000 deep: JSON.parse reads them, JSON.stringify cannot write them back.
  const deep = call('echo');
  await write(JSON.stringify(deep).replace('"args":[]', `"args":[${'['.repeat(20_000)}1${']'.repeat(20_000)}]`));
  // A chord slot its chord does not have: only the chord's script can tell, once the member has run.
  const outOfRange = call('echo', { chord: { id: 'small-chord', index: 5, queue } });
  const chords = app.broker.chords;
  assert.ok(chords, 'a Redis broker has chords');
  await chords.openChord({ id: 'small-chord', size: 1, callback: call('echo'), ttlMs: 60_000 });
  await write(JSON.stringify(outOfRange));
  const unknown = Array.from({ length: UNKNOWN_NAMES }, (_, i) => call(`unknown-${i}\u001b[31m`));
  for (let i = 0; i < unknown.length; i += 500) {
    const pipeline = admin.pipeline();
    for (const e of unknown.slice(i, i + 500)) pipeline.xadd(lane, '*', 'm', JSON.stringify(e));
    await pipeline.exec();
  }
  // Sent through the SDK, as honest use would.
  const tooLarge = await big.delay(5 * MiB);
  const chordTooLarge = await chord([big.s(5 * MiB), echo.s(1)], echo.s()).delay();
  const bigFirstId = randomUUID();
  const chained = await chain(big.s(2 * MiB).set({ taskId: bigFirstId }), echo.s()).delay();

  const drained = () =>
    eventually(
      'the queue to drain, nothing in flight',
      async () => {
        const b = await app.broker.backlog(queue);
        return b.ready + b.delayed + b.inFlight === 0 && b;
      },
      45_000,
    );
  await drained();

  // Every message ended: counted by reason, each unknown call FAILURE, each SDK call FAILURE with why.
  const text = await (await fetch(`${metrics}/metrics`)).text();
  const dead = (reason: string) => sample(text, 'taskfleet_dead_letters_total', { queue, reason }) ?? 0;
  assert.equal(dead('malformed'), malformed.length + 1, 'malformed, the entry without a message included');
  assert.equal(dead('unsupported-version'), 1);
  assert.equal(dead('too-large'), 1);
  assert.equal(dead('unknown-task'), UNKNOWN_NAMES);
  assert.equal(dead('unrecordable'), 1, 'the chord slot out of range');
  const records = await admin.mget(unknown.map((e) => `${prefix}:result:${e.id}`));
  assert.deepEqual(
    [...new Set(records.map((r) => (r ? `${JSON.parse(r).state} ${JSON.parse(r).error?.code}` : 'none')))],
    ['FAILURE unknown-task'],
  );
  const failure = async (id: string) => {
    const info = await app.result(id).info();
    assert.equal(info?.state, 'FAILURE', `${id}: ${JSON.stringify(info)}`);
    return info?.error;
  };
  assert.equal((await failure(tooLarge.id))?.code, 'RESULT_TOO_LARGE');
  assert.match((await failure(tooLarge.id))?.message ?? '', /over the 4194304-byte limit \(maxResultBytes\)/);
  assert.equal((await failure(chordTooLarge.id))?.code, 'CHORD_FAILED');
  assert.match((await failure(chordTooLarge.id))?.message ?? '', /RESULT_TOO_LARGE|over the 4194304-byte limit/);
  assert.equal((await failure(bigFirstId))?.code, 'INVALID_MESSAGE_TOO_LARGE');
  assert.match(
    (await failure(bigFirstId))?.message ?? '',
    /what follows it could not be enqueued: task echo is \d+ bytes, over the 1048576-byte limit/,
  );
  assert.match((await failure(chained.id))?.message ?? '', /an earlier step \(big .*\) failed/);
  assert.equal((await failure(deep.id))?.name, 'RangeError', 'a result too deep for JSON fails, once');
  assert.equal((await failure(outOfRange.id))?.code, 'CHORD_SLOT_INVALID');

  // Nothing ran more than maxDeliveries times; what cannot be recorded ran once.
  const counted = await runs();
  const most = Math.max(...Object.values(counted).map(Number));
  assert.ok(most <= MAX_DELIVERIES, `a call ran ${most} times: ${JSON.stringify(counted)}`);
  assert.equal(counted[bigFirstId], '1', 'the chain step whose successor is too large');
  assert.equal(counted[tooLarge.id], '1');
  assert.equal(counted[outOfRange.id], '1');

  // Bounded: the dead letters kept, Redis memory, metric labels, log lines.
  const letters = await admin.xlen(queueKeys(prefix, queue).dead);
  assert.ok(letters <= MAX_DEAD_LETTERS + STREAM_NODE_ENTRIES, `${letters} dead letters kept`);
  const grown = (await memory()) - before;
  assert.ok(grown < MEMORY_BOUND, `Redis grew by ${(grown / MiB).toFixed(1)} MiB`);
  console.log(`corpus: Redis grew by ${(grown / MiB).toFixed(2)} MiB; ${letters} dead letters kept`);
  const tasks = new Set([...text.matchAll(/task="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]));
  assert.deepEqual(
    [...tasks].filter((t) => !['echo', 'big', 'poison'].includes(t as string)),
    [],
  );
  // 10 lines per reason a minute, whatever the flood: the metric counts them all.
  const logged = worker.logs.filter((l) => l.msg === 'message dead-lettered');
  const perReason = new Map<unknown, number>();
  for (const l of logged) perReason.set(l.reason, (perReason.get(l.reason) ?? 0) + 1);
  assert.equal(perReason.get('unknown-task'), 10, `${logged.length} dead-letter lines for ${UNKNOWN_NAMES} unknown`);
  assert.ok(
    [...perReason.values()].every((n) => n <= 10),
    JSON.stringify([...perReason]),
  );
  assert.equal(worker.running, true, 'the worker stays up');
  assert.equal((await fetch(`${metrics}/readyz`)).status, 200);

  // A task that kills its worker, each time: run maxDeliveries times, by one worker after another
  // (as Kubernetes restarts them), then dead-lettered as poison.
  const killer = await poison.delay();
  const poisoned = async () => {
    const [letter] = (await admin.xrevrange(queueKeys(prefix, queue).dead, '+', '-', 'COUNT', 1)) as [
      string,
      string[],
    ][];
    return letter?.[1].includes('poison') && letter;
  };
  const restarts: WorkerProcess[] = [];
  await eventually(
    'the task that kills its worker to be dead-lettered as poison',
    async () => {
      if (await poisoned()) return true;
      if (!worker.running) {
        restarts.push(worker);
        ({ worker, metrics } = await startWorker());
      }
      return false;
    },
    45_000,
  );
  assert.equal((await runs())[killer.id], String(MAX_DELIVERIES));
  assert.equal(restarts.length, MAX_DELIVERIES, 'each run killed its worker');
  assert.equal((await failure(killer.id))?.code, 'poison');
  await drained();
  assert.equal(worker.running, true, 'the worker after the last restart stays up');
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
});
