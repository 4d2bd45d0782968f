/**
 * The worker benchmark: Taskfleet against BullMQ and a bare ioredis Streams loop, on one private
 * redis-server, in one run. Every figure is reported beside an anchor measured in the same run.
 *
 *   node bench/worker.ts [--tasks 100000] [--concurrency 50] [--rounds 3] [--quick] [--write] [--json FILE]
 *
 * --quick uses 10,000 tasks and one round, for development. --write rewrites the worker section of
 * docs/benchmarks.md (`make bench` does); --json FILE keeps the raw numbers. Consumers run in child
 * processes (bench/worker-child.ts).
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
  type DrainResult,
  type EnqueueResult,
  type LatencyResult,
  type RawLimit,
  renderMarkdown,
  renderSummary,
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

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

for (const tool of ['redis-server', 'redis-benchmark']) {
  await run(tool, ['--version']).catch(() => {
    throw new Error(`${tool} is missing: install Debian's redis-server and redis-tools (make prerequisites)`);
  });
}

const loadAtStart = loadavg()[0] as number;
const dir = await mkdtemp(join(tmpdir(), 'taskfleet-bench-'));
const { endpoint, services } = await startRedis(dir);
const { host, port } = endpoint;
const admin = new Redis({ host, port });
progress(
  `redis ${endpoint.version} on ${endpoint.url}; ${tasks} tasks, concurrency ${concurrency}, ${rounds} round(s)`,
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
  { label: 'ours', name: 'ours', ignoreResult: false },
  { label: 'ours-ignore-result', name: 'ours', ignoreResult: true },
  { label: 'bullmq', name: 'bullmq', ignoreResult: false },
  { label: 'bare', name: 'bare', ignoreResult: false },
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
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    load: [loadAtStart, loadavg()[0] as number] as [number, number],
  };
}

try {
  const drains = new Map<string, DrainResult>();
  const bulks = new Map<string, Pick<EnqueueResult, 'bulk' | 'bulkCpuMicros' | 'bulkWork'>>();
  const singles = new Map<string, Pick<EnqueueResult, 'awaited' | 'inFlight'>>();
  for (let round = 0; round < rounds; round++) {
    // Alternate the order, so no contender always runs first (or last) on a warming machine.
    const order = round % 2 === 0 ? [...drainContenders] : [...drainContenders].reverse();
    for (const contender of order) {
      const { result, ...bulk } = await drain(contender, round);
      keepBest(drains, contender.label, result, (r) => r.tasksPerSecond);
      keepBest(bulks, contender.name, bulk, (r) => r.bulk);
    }
    for (const name of round % 2 === 0
      ? (['ours', 'bullmq', 'bare'] as const)
      : (['bare', 'bullmq', 'ours'] as const)) {
      const single = await enqueueSingly(name, round);
      keepBest(singles, name, single, (r) => r.awaited + r.inFlight);
    }
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
      ...(bulks.get(name) as Pick<EnqueueResult, 'bulk' | 'bulkCpuMicros' | 'bulkWork'>),
      ...(singles.get(name) as Pick<EnqueueResult, 'awaited' | 'inFlight'>),
    })),
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
  for (const service of services) await service.stop();
  await rm(dir, { recursive: true, force: true });
}
