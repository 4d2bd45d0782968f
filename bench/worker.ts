/**
 * The worker benchmark: Taskfleet against BullMQ, a bare ioredis Streams loop and Celery 5, on one
 * private redis-server, in one run; and Taskfleet's drain with 1, 2 and 4 worker processes on that one
 * Redis. Every figure is reported beside an anchor measured in the same run.
 *
 *   node bench/worker.ts [--tasks 100000] [--concurrency 50] [--rounds 3] [--quick] [--write] [--json FILE]
 *
 * --quick uses 10,000 tasks, one round and two of the eight Celery variants, for development. --write
 * rewrites the worker section of docs/benchmarks.md (`make bench` does); --json FILE keeps the raw
 * numbers. Consumers run in child processes (bench/worker-child.ts; Celery's: bench/celery/). Celery
 * is installed on first use into a venv in the cache (bench/celery/contender.ts), not the project.
 *
 * Taskfleet is measured as users run it: the compiled package, `taskfleet` → worker/dist. The bench
 * refuses to start when dist/ is missing or older than worker/src (run `npm run build`; `make
 * bench-worker` builds first), or when Node resolves `taskfleet` to its sources (`--conditions=source`,
 * which the Makefile exports for the tests: run with `NODE_OPTIONS=`). Its child processes get its
 * environment with that condition stripped from NODE_OPTIONS (support/compiled.ts), so none of them
 * loads the sources either.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedis } from '../test/stack/redis.ts';
import {
  CELERY_VARIANTS,
  type CeleryTarget,
  type CeleryVariant,
  enqueue as celeryEnqueue,
  installCelery,
  QUICK_CELERY_VARIANTS,
  startWorker as startCeleryWorker,
} from './celery/contender.ts';
import * as bare from './contenders/bare.ts';
import * as bullmq from './contenders/bullmq.ts';
import * as ours from './contenders/ours.ts';
import { startChild } from './support/child.ts';
import { assertCompiledAndFresh } from './support/compiled.ts';
import { summariseProfile } from './support/cpu-profile.ts';
import { noopEnvelope } from './support/envelope.ts';
import { type ContenderName, now, type Producer } from './support/protocol.ts';
import { serverWork, workPerTask } from './support/redis-info.ts';
import {
  type BenchResults,
  type BulkResult,
  type CeleryDrainResult,
  type CeleryEnqueueResult,
  type DrainResult,
  type EnqueueResult,
  type LatencyResult,
  type RawLimit,
  renderMarkdown,
  renderSummary,
  type ScaleResult,
  writeWorkerSection,
} from './support/report.ts';

assertCompiledAndFresh();
const run = promisify(execFile);

const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string' },
    concurrency: { type: 'string', default: '50' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const tasks = Number(flags.tasks ?? (flags.quick ? 10_000 : 100_000));
const concurrency = Number(flags.concurrency);
const rounds = Number(flags.rounds ?? (flags.quick ? 1 : 3));
for (const [name, value] of Object.entries({ tasks, concurrency, rounds })) {
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be an integer ≥ 1, not ${value}`);
}

const CHUNK = 1000;
const IN_FLIGHT = 100;
const SINGLE_TASKS = Math.max(1000, Math.floor(tasks / 10));
const LATENCY_TASKS = 2000;
const LATENCY_INTERVAL_MS = 2;
const RAW_OPS = flags.quick ? 50_000 : 200_000;
const drainTimeoutMs = 60_000 + tasks * 5;
/** Worker processes of ours on the one Redis, each with `concurrency`, draining the same `tasks`. */
const SCALE_WORKERS = [1, 2, 4];
/**
 * Celery drains a tenth of the tasks: it runs at about a thousand a second here, and its rate is
 * steady long before 10,000. Its producer fills a queue once per round and result setting, kept in a
 * database of its own; each drain starts from a server-side COPY of it.
 */
const CELERY_TASKS = Math.max(1000, Math.floor(tasks / 10));
const celeryVariants = flags.quick ? QUICK_CELERY_VARIANTS : CELERY_VARIANTS;
const CELERY_QUEUE = 'bench-celery';
const CELERY_DB = { broker: 1, backend: 2, filled: { stored: 3, ignored: 4 } };
const celeryTimeoutMs = 60_000 + CELERY_TASKS * 20;

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

for (const tool of ['redis-server', 'redis-benchmark']) {
  await run(tool, ['--version']).catch(() => {
    throw new Error(`${tool} is missing: install Debian's redis-server and redis-tools (make prerequisites)`);
  });
}

const celery = await installCelery(progress);
const loadAtStart = loadavg()[0] as number;
const dir = await mkdtemp(join(tmpdir(), 'taskfleet-bench-'));
const { endpoint, services } = await startRedis(dir);
const { host, port } = endpoint;
const admin = new Redis({ host, port });
const celeryDbs = {
  broker: new Redis({ host, port, db: CELERY_DB.broker }),
  backend: new Redis({ host, port, db: CELERY_DB.backend }),
  stored: new Redis({ host, port, db: CELERY_DB.filled.stored }),
  ignored: new Redis({ host, port, db: CELERY_DB.filled.ignored }),
};
progress(
  `redis ${endpoint.version} on ${endpoint.url}; ${tasks} tasks, concurrency ${concurrency}, ${rounds} round(s); ` +
    `Celery ${celery.versions.celery}: ${CELERY_TASKS} tasks, ${celeryVariants.length} variants`,
);

const producers: Record<ContenderName, (queue: string) => Producer> = {
  ours: (queue) => ours.producer(host, port, queue),
  bullmq: (queue) => bullmq.producer(host, port, queue),
  bare: (queue) => bare.producer(host, port, queue),
};

/** Best of the rounds: load from elsewhere on the machine only ever slows a round down. */
function keepBest<T>(map: Map<string, T>, key: string, value: T, score: (t: T) => number): void {
  const current = map.get(key);
  if (!current || score(value) > score(current)) map.set(key, value);
}

const drainContenders = [
  { label: 'ours', name: 'ours', ignoreResult: false, history: false },
  { label: 'ours-history', name: 'ours', ignoreResult: false, history: true },
  { label: 'ours-ignore-result', name: 'ours', ignoreResult: true, history: false },
  { label: 'bullmq', name: 'bullmq', ignoreResult: false, history: false },
  { label: 'bare', name: 'bare', ignoreResult: false, history: false },
] as const;

async function drain(contender: (typeof drainContenders)[number], round: number) {
  await admin.flushall();
  const queue = `bench-${contender.label}-${round}`;
  const producer = producers[contender.name](queue);
  const beforeEnqueue = await serverWork(admin);
  const t0 = now();
  const cpu0 = process.cpuUsage();
  await producer.bulk(tasks, CHUNK);
  const bulkSeconds = (now() - t0) / 1000;
  const { user, system } = process.cpuUsage(cpu0);
  const afterEnqueue = await serverWork(admin);
  await producer.close();
  const child = startChild(
    {
      contender: contender.name,
      mode: 'drain',
      host,
      port,
      queue,
      tasks,
      concurrency,
      ignoreResult: contender.ignoreResult,
      history: contender.history,
    },
    drainTimeoutMs,
  );
  const done = await child.done;
  const afterDrain = await serverWork(admin);
  await child.exited;
  if (done.failures > 0) throw new Error(`${contender.label}: ${done.failures} of ${tasks} no-op tasks failed`);
  const seconds = (done.last - done.first) / 1000;
  const result: DrainResult = {
    ...contender,
    tasksPerSecond: (done.count - 1) / seconds,
    seconds,
    cpuMicros: done.cpuMicros / done.count,
    rssPeak: done.rssPeak,
    failures: done.failures,
    work: workPerTask(afterEnqueue, afterDrain, tasks),
  };
  progress(
    `drain ${contender.label}: ${Math.round(result.tasksPerSecond)} tasks/s; bulk enqueue ${Math.round(tasks / bulkSeconds)}/s`,
  );
  return {
    result,
    bulk: tasks / bulkSeconds,
    bulkCpuMicros: (user + system) / tasks,
    bulkWork: workPerTask(beforeEnqueue, afterEnqueue, tasks),
  };
}

async function enqueueSingly(name: ContenderName, round: number) {
  await admin.flushall();
  const producer = producers[name](`bench-single-${name}-${round}`);
  await producer.one(-1); // connected, scripts loaded: the timing is of enqueues alone
  let t0 = now();
  for (let i = 0; i < SINGLE_TASKS; i++) await producer.one(i);
  const awaited = SINGLE_TASKS / ((now() - t0) / 1000);
  let next = 0;
  t0 = now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < SINGLE_TASKS) await producer.one(next++);
    }),
  );
  const inFlight = SINGLE_TASKS / ((now() - t0) / 1000);
  await producer.close();
  progress(`enqueue ${name}: awaited ${Math.round(awaited)}/s, ${IN_FLIGHT} in flight ${Math.round(inFlight)}/s`);
  return { awaited, inFlight };
}

async function latency(name: ContenderName): Promise<LatencyResult> {
  await admin.flushall();
  const queue = `bench-latency-${name}`;
  const child = startChild(
    { contender: name, mode: 'latency', host, port, queue, tasks: LATENCY_TASKS, concurrency, ignoreResult: false },
    60_000 + LATENCY_TASKS * LATENCY_INTERVAL_MS * 10,
  );
  const { rssIdle } = await child.ready;
  const producer = producers[name](queue);
  const start = now();
  for (let i = 0; i < LATENCY_TASKS; i++) {
    const wait = start + i * LATENCY_INTERVAL_MS - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await producer.one(now());
  }
  const done = await child.done;
  await child.exited;
  await producer.close();
  const sorted = done.latencies.toSorted((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  const result = { name, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) as number, rssIdle };
  progress(`latency ${name}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms`);
  return result;
}

const celeryTarget = (brokerDb: number, variant: Pick<CeleryVariant, 'acksLate' | 'ignoreResult'>): CeleryTarget => ({
  host,
  port,
  brokerDb,
  backendDb: CELERY_DB.backend,
  queue: CELERY_QUEUE,
  ...variant,
});
const resultSetting = (ignoreResult: boolean) => (ignoreResult ? 'ignored' : 'stored');
const filledInRound = new Map<string, number>();

/**
 * Celery's producer fills its queue (in a database of its own) with CELERY_TASKS calls, once per
 * round and result setting: the bulk enqueue figure. The messages carry ignore_result, not acks_late
 * (a worker setting), so every variant with the same result setting drains a copy of the same queue.
 */
async function fillCelery(ignoreResult: boolean, round: number): Promise<BulkResult | undefined> {
  const setting = resultSetting(ignoreResult);
  const db = celeryDbs[setting];
  if (filledInRound.get(setting) === round && (await db.exists(CELERY_QUEUE))) return undefined;
  await db.flushdb();
  const before = await serverWork(admin);
  const target = celeryTarget(CELERY_DB.filled[setting], { acksLate: true, ignoreResult });
  const { seconds, cpuMicros } = await celeryEnqueue(celery, target, 'bulk', CELERY_TASKS, CHUNK);
  const after = await serverWork(admin);
  const queued = await db.llen(CELERY_QUEUE);
  if (queued !== CELERY_TASKS) throw new Error(`Celery's queue holds ${queued} calls after ${CELERY_TASKS} were sent`);
  filledInRound.set(setting, round);
  progress(`enqueue celery (results ${setting}): bulk ${Math.round(CELERY_TASKS / seconds)}/s`);
  return {
    bulk: CELERY_TASKS / seconds,
    bulkCpuMicros: cpuMicros / CELERY_TASKS,
    bulkWork: workPerTask(before, after, CELERY_TASKS),
  };
}

async function drainCelery(variant: CeleryVariant, round: number) {
  const bulk = await fillCelery(variant.ignoreResult, round);
  await celeryDbs.broker.flushdb();
  await celeryDbs.backend.flushdb();
  await celeryDbs[resultSetting(variant.ignoreResult)].copy(CELERY_QUEUE, CELERY_QUEUE, 'DB', CELERY_DB.broker);
  const before = await serverWork(admin);
  const worker = startCeleryWorker(
    celery,
    celeryTarget(CELERY_DB.broker, variant),
    variant,
    CELERY_TASKS,
    celeryTimeoutMs,
  );
  const done = await worker.done;
  const after = await serverWork(admin);
  await worker.stop();
  if (done.failures > 0) throw new Error(`${variant.label}: ${done.failures} of ${CELERY_TASKS} no-op tasks failed`);
  const seconds = (done.last - done.first) / 1000;
  const result: CeleryDrainResult = {
    ...variant,
    tasks: CELERY_TASKS,
    tasksPerSecond: (done.count - 1) / seconds,
    seconds,
    cpuMicros: done.cpuMicros / done.count,
    rssPeak: done.rssPeak,
    work: workPerTask(before, after, CELERY_TASKS),
  };
  progress(`drain ${variant.label}: ${Math.round(result.tasksPerSecond)} tasks/s`);
  return { result, bulk };
}

/** Celery's `apply_async` in a loop, each call returning once published. */
async function enqueueCelerySingly(ignoreResult: boolean): Promise<number> {
  await celeryDbs.broker.flushdb();
  const target = celeryTarget(CELERY_DB.broker, { acksLate: true, ignoreResult });
  const { seconds } = await celeryEnqueue(celery, target, 'one', SINGLE_TASKS);
  const awaited = SINGLE_TASKS / seconds;
  progress(`enqueue celery (results ${resultSetting(ignoreResult)}): apply_async ${Math.round(awaited)}/s`);
  return awaited;
}

/**
 * Our drain of the same `tasks` by several worker processes on the one Redis: they load, start
 * consuming together, report their counts as they go; once the counts add up, each reports its first
 * and last completion and its CPU time.
 */
async function scale(workers: number, round: number): Promise<ScaleResult> {
  await admin.flushall();
  const queue = `bench-scale-${workers}-${round}`;
  const producer = producers.ours(queue);
  await producer.bulk(tasks, CHUNK);
  await producer.close();
  const config = {
    contender: 'ours',
    mode: 'share',
    host,
    port,
    queue,
    tasks,
    concurrency,
    ignoreResult: false,
  } as const;
  const children = Array.from({ length: workers }, () => startChild(config, drainTimeoutMs));
  await Promise.all(children.map((child) => child.ready));
  const counts = children.map(() => 0);
  const counted = Promise.withResolvers<void>();
  children.forEach((child, i) => {
    child.onProgress((count) => {
      counts[i] = count;
      if (counts.reduce((a, b) => a + b, 0) >= tasks) counted.resolve();
    });
  });
  const before = await serverWork(admin);
  for (const child of children) child.command('go');
  // A child's done settles before the count only if it fails.
  await Promise.race([counted.promise, ...children.map((child) => child.done)]);
  for (const child of children) child.command('report');
  const dones = await Promise.all(children.map((child) => child.done));
  const after = await serverWork(admin);
  await Promise.all(children.map((child) => child.exited));
  const failures = dones.reduce((n, d) => n + d.failures, 0);
  if (failures > 0) throw new Error(`${workers} workers: ${failures} of ${tasks} no-op tasks failed`);
  const busy = dones.filter((d) => d.count > 0);
  const seconds = (Math.max(...busy.map((d) => d.last)) - Math.min(...busy.map((d) => d.first))) / 1000;
  const result: ScaleResult = {
    workers,
    tasksPerSecond: (tasks - 1) / seconds,
    seconds,
    cpuMicros: dones.reduce((n, d) => n + d.cpuMicros, 0) / tasks,
    rssPeak: Math.max(...dones.map((d) => d.rssPeak)),
    work: workPerTask(before, after, tasks),
  };
  progress(`drain ours, ${workers} worker(s): ${Math.round(result.tasksPerSecond)} tasks/s`);
  return result;
}

/** The RSS of a child that loads no contender: Node, and the TypeScript it strips, in every figure. */
async function baselineRss(): Promise<number> {
  const child = startChild(
    { contender: 'bare', mode: 'baseline', host, port, queue: 'none', tasks: 0, concurrency, ignoreResult: false },
    30_000,
  );
  const { rssIdle } = await child.ready;
  await child.exited;
  return rssIdle;
}

/** Our drain again under V8's CPU profiler: where the worker process spends its CPU. Not timed. */
async function profileOurs() {
  await admin.flushall();
  const queue = 'bench-profile';
  const producer = producers.ours(queue);
  await producer.bulk(tasks, CHUNK);
  await producer.close();
  const profile = join(dir, 'worker.cpuprofile');
  const child = startChild(
    { contender: 'ours', mode: 'drain', host, port, queue, tasks, concurrency, ignoreResult: false, profile },
    drainTimeoutMs * 2,
  );
  await child.done;
  await child.exited;
  progress('profiled our drain');
  return summariseProfile(profile);
}

/** redis-benchmark's XADD of a message the size of ours: what the server itself can take. */
async function rawLimit(): Promise<RawLimit> {
  await admin.flushall();
  const payload = noopEnvelope('bench-ours');
  const rps = async (ops: number, extra: string[]) => {
    const args = [
      '-h',
      host,
      '-p',
      String(port),
      '-n',
      String(ops),
      '--csv',
      ...extra,
      'XADD',
      'bench-raw',
      '*',
      'm',
      payload,
    ];
    const { stdout } = await run('redis-benchmark', args, { maxBuffer: 1 << 20 });
    // The last line is "<command>","rps", then six latency columns; the command holds quotes of its own.
    const row = stdout.trim().split('\n').at(-1) ?? '';
    return Number(/"([\d.]+)"(?:,"[\d.]+"){6}$/.exec(row)?.[1] ?? Number.NaN);
  };
  const pipelined = await rps(RAW_OPS, ['-c', '50', '-P', '16']);
  const single = await rps(Math.floor(RAW_OPS / 10), ['-c', '1', '-P', '1']);
  await admin.del('bench-raw');
  progress(
    `redis-benchmark XADD: ${Math.round(pipelined)}/s pipelined, ${Math.round(single)}/s one client one at a time`,
  );
  return { pipelined, single, payloadBytes: Buffer.byteLength(payload), ops: RAW_OPS };
}

async function machine() {
  const [nproc, cpuinfo, bullmqPackage, ioredisPackage] = await Promise.all([
    run('nproc').then(({ stdout }) => Number(stdout.trim())),
    readFile('/proc/cpuinfo', 'utf8'),
    readFile(new URL('../node_modules/bullmq/package.json', import.meta.url), 'utf8'),
    readFile(new URL('../node_modules/ioredis/package.json', import.meta.url), 'utf8'),
  ]);
  return {
    nproc,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    redis: endpoint.version,
    bullmq: (JSON.parse(bullmqPackage) as { version: string }).version,
    ioredis: (JSON.parse(ioredisPackage) as { version: string }).version,
    celery: celery.versions,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    load: [loadAtStart, loadavg()[0] as number] as [number, number],
  };
}

try {
  const drains = new Map<string, DrainResult>();
  const bulks = new Map<string, BulkResult>();
  const singles = new Map<string, Pick<EnqueueResult, 'awaited' | 'inFlight'>>();
  const celeryDrains = new Map<string, CeleryDrainResult>();
  const celeryBulks = new Map<string, BulkResult>();
  const celerySingles = new Map<string, number>();
  const scales = new Map<string, ScaleResult>();
  // Alternate the order, so no contender always runs first (or last) on a warming machine.
  const inTurn = async (round: number, jobs: (() => Promise<void>)[]) => {
    for (const job of round % 2 === 0 ? jobs : jobs.toReversed()) await job();
  };
  for (let round = 0; round < rounds; round++) {
    await inTurn(round, [
      ...drainContenders.map((contender) => async () => {
        const { result, ...bulk } = await drain(contender, round);
        keepBest(drains, contender.label, result, (r) => r.tasksPerSecond);
        keepBest(bulks, contender.name, bulk, (r) => r.bulk);
      }),
      ...celeryVariants.map((variant) => async () => {
        const { result, bulk } = await drainCelery(variant, round);
        keepBest(celeryDrains, variant.label, result, (r) => r.tasksPerSecond);
        if (bulk) keepBest(celeryBulks, resultSetting(variant.ignoreResult), bulk, (r) => r.bulk);
      }),
    ]);
    await inTurn(round, [
      ...(['ours', 'bullmq', 'bare'] as const).map((name) => async () => {
        const single = await enqueueSingly(name, round);
        keepBest(singles, name, single, (r) => r.awaited + r.inFlight);
      }),
      ...[false, true].map((ignoreResult) => async () => {
        keepBest(celerySingles, resultSetting(ignoreResult), await enqueueCelerySingly(ignoreResult), (r) => r);
      }),
    ]);
    await inTurn(
      round,
      SCALE_WORKERS.map((workers) => async () => {
        keepBest(scales, String(workers), await scale(workers, round), (r) => r.tasksPerSecond);
      }),
    );
  }
  const harnessRss = await baselineRss();
  const latencies: LatencyResult[] = [];
  for (const name of ['ours', 'bullmq', 'bare'] as const) latencies.push(await latency(name));
  const profile = await profileOurs();
  const raw = await rawLimit();
  const results: BenchResults = {
    machine: await machine(),
    command: `node bench/worker.ts ${process.argv.slice(2).join(' ')}`.trim(),
    tasks,
    concurrency,
    rounds,
    chunk: CHUNK,
    inFlight: IN_FLIGHT,
    singleTasks: SINGLE_TASKS,
    latencyTasks: LATENCY_TASKS,
    latencyIntervalMs: LATENCY_INTERVAL_MS,
    drain: drainContenders.map((c) => drains.get(c.label) as DrainResult),
    enqueue: (['ours', 'bullmq', 'bare'] as const).map((name) => ({
      name,
      ...(bulks.get(name) as BulkResult),
      ...(singles.get(name) as Pick<EnqueueResult, 'awaited' | 'inFlight'>),
    })),
    celery: {
      tasks: CELERY_TASKS,
      drain: celeryVariants.map((v) => celeryDrains.get(v.label) as CeleryDrainResult),
      // --quick fills only the queue of results stored: a setting no variant drained has no bulk figure.
      enqueue: (['stored', 'ignored'] as const)
        .filter((setting) => celeryBulks.has(setting))
        .map(
          (setting): CeleryEnqueueResult => ({
            ignoreResult: setting === 'ignored',
            ...(celeryBulks.get(setting) as BulkResult),
            awaited: celerySingles.get(setting) as number,
          }),
        ),
    },
    scale: SCALE_WORKERS.map((workers) => scales.get(String(workers)) as ScaleResult),
    latency: latencies,
    harnessRss,
    raw,
    profile,
  };
  process.stdout.write(renderSummary(results));
  if (flags.json) await writeFile(flags.json, `${JSON.stringify(results, null, 2)}\n`);
  if (flags.write) {
    const file = await writeWorkerSection(renderMarkdown(results));
    progress(`wrote ${file}`);
  }
} finally {
  admin.disconnect();
  for (const db of Object.values(celeryDbs)) db.disconnect();
  for (const service of services) await service.stop();
  await rm(dir, { recursive: true, force: true });
}
