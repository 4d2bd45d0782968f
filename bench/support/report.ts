import type { CeleryInstall, CeleryVariant } from '../celery/contender.ts';
import type { ProfileSummary } from './cpu-profile.ts';
import { writeDocSection } from './doc.ts';
import type { ContenderName } from './protocol.ts';
import type { WorkPerTask } from './redis-info.ts';

export interface DrainResult {
  label: 'ours' | 'ours-history' | 'ours-ignore-result' | 'bullmq' | 'bare';
  name: ContenderName;
  ignoreResult: boolean;
  /** ours: whether the worker kept the task history (absent in runs from before it existed: it did not). */
  history?: boolean;
  tasksPerSecond: number;
  seconds: number;
  /** The consumer process's CPU time (user + system) per task, µs. */
  cpuMicros: number;
  rssPeak: number;
  failures: number;
  work: WorkPerTask;
}

/** A bulk enqueue: what the drain starts with. */
export interface BulkResult {
  /** tasks/s, bulk in chunks. */
  bulk: number;
  /** The producer's CPU time per task, bulk, µs. */
  bulkCpuMicros: number;
  bulkWork: WorkPerTask;
}

export interface EnqueueResult extends BulkResult {
  name: ContenderName;
  /** tasks/s, one call awaited at a time. */
  awaited: number;
  /** tasks/s, a fixed number of calls in flight. */
  inFlight: number;
}

export interface CeleryDrainResult extends CeleryVariant {
  tasks: number;
  tasksPerSecond: number;
  seconds: number;
  /** The worker's processes' CPU time (user + system) per task, µs, pool processes included. */
  cpuMicros: number;
  /** The RSS of the worker's processes, summed. */
  rssPeak: number;
  work: WorkPerTask;
}

export interface CeleryEnqueueResult extends BulkResult {
  ignoreResult: boolean;
  /** tasks/s, `apply_async` in a loop. */
  awaited: number;
}

/** Our default drain of the same tasks by several worker processes on one Redis. */
export interface ScaleResult {
  workers: number;
  tasksPerSecond: number;
  seconds: number;
  /** Every worker's CPU time, added up, per task, µs. */
  cpuMicros: number;
  /** The largest worker's. */
  rssPeak: number;
  work: WorkPerTask;
}

export interface LatencyResult {
  name: ContenderName;
  p50: number;
  p99: number;
  max: number;
  rssIdle: number;
}

export interface RawLimit {
  /** XADD/s, 50 clients, 16 commands pipelined each. */
  pipelined: number;
  /** XADD/s, one client, one command at a time. */
  single: number;
  payloadBytes: number;
  ops: number;
}

export interface BenchResults {
  machine: {
    nproc: number;
    cpu: string;
    node: string;
    redis: string;
    bullmq: string;
    ioredis: string;
    celery: CeleryInstall['versions'];
    date: string;
    /** The 1-minute load average when the run started and when it ended. */
    load: [number, number];
  };
  command: string;
  tasks: number;
  concurrency: number;
  rounds: number;
  chunk: number;
  inFlight: number;
  singleTasks: number;
  latencyTasks: number;
  latencyIntervalMs: number;
  drain: DrainResult[];
  enqueue: EnqueueResult[];
  latency: LatencyResult[];
  celery: { tasks: number; drain: CeleryDrainResult[]; enqueue: CeleryEnqueueResult[] };
  scale: ScaleResult[];
  /** RSS of a child process that loads no contender. */
  harnessRss: number;
  raw: RawLimit;
  profile: ProfileSummary;
}

/** historyCost: the drain with the task history kept is at most this much slower than without (issue 16). */
const GOALS = { drainVsBullmq: 3, drainVsBare: 0.5, ignoreVsBare: 0.7, bulkVsBullmq: 3, historyCost: 0.05 };

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits = 2) => n.toFixed(digits);
const ratio = (n: number) => `${n.toFixed(2)}×`;
const percent = (n: number) => `${Math.round(n * 100)}%`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const met = (ok: boolean) => (ok ? '**met**' : '**missed**');
/**
 * A goal is judged on throughput, as set. When the CPU view disagrees, say so: a busy machine slows a
 * consumer that waits on round trips more than one that computes, and can tip a ratio either way.
 */
const verdict = (ok: boolean, okByCpu: boolean) =>
  ok === okByCpu
    ? met(ok)
    : ok
      ? '**met** in this run, not by CPU per task'
      : '**missed** in this run, met by CPU per task';

function pick<T extends { name: ContenderName }>(rows: T[], name: ContenderName): T {
  return rows.find((r) => r.name === name) as T;
}

/** The figures the goals are judged on. */
export function headline(r: BenchResults) {
  const drain = (label: DrainResult['label']) => r.drain.find((d) => d.label === label) as DrainResult;
  const ours = drain('ours');
  // Absent from runs made before the history existed.
  const withHistory = r.drain.find((d) => d.label === 'ours-history');
  const historyCost = withHistory ? 1 - withHistory.tasksPerSecond / ours.tasksPerSecond : undefined;
  const oursIgnore = drain('ours-ignore-result');
  const bullmq = drain('bullmq');
  const bare = drain('bare');
  const bulk = pick(r.enqueue, 'ours').bulk / pick(r.enqueue, 'bullmq').bulk;
  return {
    ours,
    oursIgnore,
    bullmq,
    bare,
    vsBullmq: ours.tasksPerSecond / bullmq.tasksPerSecond,
    vsBare: ours.tasksPerSecond / bare.tasksPerSecond,
    ignoreVsBare: oursIgnore.tasksPerSecond / bare.tasksPerSecond,
    bulk,
    withHistory,
    historyCost,
    goals: {
      historyCost: historyCost === undefined ? undefined : historyCost <= GOALS.historyCost,
      drainVsBullmq: ours.tasksPerSecond / bullmq.tasksPerSecond >= GOALS.drainVsBullmq,
      drainVsBare: ours.tasksPerSecond / bare.tasksPerSecond >= GOALS.drainVsBare,
      ignoreVsBare: oursIgnore.tasksPerSecond / bare.tasksPerSecond >= GOALS.ignoreVsBare,
      bulkVsBullmq: bulk >= GOALS.bulkVsBullmq,
    },
  };
}

/** A short plain-text account for the terminal. */
export function renderSummary(r: BenchResults): string {
  const h = headline(r);
  const lines = [
    '',
    `drain (${int(r.tasks)} tasks, concurrency ${r.concurrency}, best of ${r.rounds}):`,
    ...r.drain.map(
      (d) =>
        `  ${d.label.padEnd(20)} ${int(d.tasksPerSecond).padStart(8)} tasks/s  ${fixed(d.cpuMicros, 1).padStart(5)} µs CPU/task  ` +
        `peak RSS ${mib(d.rssPeak).padStart(8)}  ${fixed(d.work.commands)} Redis commands/task  ${fixed(d.work.cpuMicros, 1)} µs Redis CPU/task`,
    ),
    `  ours/BullMQ ${ratio(h.vsBullmq)} (goal ≥ ${GOALS.drainVsBullmq}×: ${h.goals.drainVsBullmq ? 'met' : 'MISSED'})` +
      `   ours/bare ${percent(h.vsBare)} (goal ≥ ${percent(GOALS.drainVsBare)}: ${h.goals.drainVsBare ? 'met' : 'MISSED'})` +
      `   ignoreResult/bare ${percent(h.ignoreVsBare)} (goal ≥ ${percent(GOALS.ignoreVsBare)}: ${h.goals.ignoreVsBare ? 'met' : 'MISSED'})`,
    'enqueue (tasks/s):',
    ...r.enqueue.map(
      (e) =>
        `  ${e.name.padEnd(8)} bulk ${int(e.bulk).padStart(8)} (${fixed(e.bulkCpuMicros, 1)} µs CPU/task)   awaited ${int(e.awaited).padStart(7)}   ${r.inFlight} in flight ${int(e.inFlight).padStart(7)}`,
    ),
    `  bulk ours/BullMQ ${ratio(h.bulk)} (goal ≥ ${GOALS.bulkVsBullmq}×: ${h.goals.bulkVsBullmq ? 'met' : 'MISSED'})`,
    ...(h.historyCost === undefined
      ? []
      : [
          `  history costs ${percent(h.historyCost)} of the drain rate (goal ≤ ${percent(GOALS.historyCost)}: ${h.goals.historyCost ? 'met' : 'MISSED'})`,
        ]),
    `celery ${r.machine.celery.celery} (${int(r.celery.tasks)} tasks, best of ${r.rounds}):`,
    ...r.celery.drain.map(
      (d) =>
        `  ${d.label.padEnd(28)} ${int(d.tasksPerSecond).padStart(7)} tasks/s  ${fixed(d.cpuMicros, 1).padStart(6)} µs CPU/task  ` +
        `peak RSS ${mib(d.rssPeak).padStart(8)}  ${fixed(d.work.commands)} Redis commands/task  ours/it ${ratio(h.ours.tasksPerSecond / d.tasksPerSecond)}`,
    ),
    ...r.celery.enqueue.map(
      (e) =>
        `  enqueue, results ${e.ignoreResult ? 'ignored' : 'stored '}  group ${int(e.bulk).padStart(6)}/s (${fixed(e.bulkCpuMicros, 1)} µs CPU/task)   apply_async ${int(e.awaited).padStart(6)}/s`,
    ),
    'scale (ours, default settings, one Redis):',
    ...r.scale.map(
      (c) =>
        `  ${String(c.workers).padStart(2)} worker(s) ${int(c.tasksPerSecond).padStart(8)} tasks/s  ${fixed(c.cpuMicros, 1).padStart(5)} µs CPU/task (all)  ` +
        `${fixed(c.work.cpuMicros, 1)} µs Redis CPU/task  Redis busy ${percent((c.tasksPerSecond * c.work.cpuMicros) / 1e6)}`,
    ),
    'latency enqueue → start (ms):',
    ...r.latency.map(
      (l) =>
        `  ${l.name.padEnd(8)} p50 ${fixed(l.p50)}  p99 ${fixed(l.p99)}  max ${fixed(l.max)}  idle RSS ${mib(l.rssIdle)}`,
    ),
    `redis-benchmark XADD: ${int(r.raw.pipelined)}/s pipelined, ${int(r.raw.single)}/s one at a time`,
    `harness RSS ${mib(r.harnessRss)}`,
    'top self time in our worker (drain, CPU profile):',
    ...r.profile.functions.slice(0, 8).map((f) => `  ${percent(f.share).padStart(4)}  ${f.name}  ${f.where}`),
    '',
  ];
  return lines.join('\n');
}

/** Replaces the worker section of docs/benchmarks.md (the rest of the file is kept). */
export function writeWorkerSection(section: string): Promise<string> {
  return writeDocSection('worker', 'make bench', section);
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const DRAIN_NAMES: Record<DrainResult['label'], string> = {
  ours: 'Taskfleet, results stored (default)',
  'ours-history': 'Taskfleet, results stored, with the task history (`history: true`)',
  'ours-ignore-result': 'Taskfleet, `ignoreResult: true`',
  bullmq: 'BullMQ, defaults',
  bare: 'bare ioredis Streams loop (ceiling)',
};
const NAMES: Record<ContenderName, string> = { ours: 'Taskfleet', bullmq: 'BullMQ', bare: 'bare ioredis' };

function topCommands(work: WorkPerTask): string {
  return work.top
    .filter(([, n]) => n >= 0.01)
    .map(([name, n]) => `${name} ${fixed(n)}`)
    .join(', ');
}

function celeryName(v: CeleryVariant): string {
  const acks = v.acksLate ? '`acks_late`' : 'acked on receipt';
  return `Celery, ${v.pool} \`-c ${v.concurrency}\`, ${acks}, ${v.ignoreResult ? '`ignore_result`' : 'results stored'}`;
}

/** What a task costs the machine: the consumer's (or producer's) CPU plus Redis's, µs. */
const machineCost = (d: { cpuMicros: number; work: WorkPerTask }) => d.cpuMicros + d.work.cpuMicros;

/** Taskfleet's default against the Celery setting closest to it (acks_late, results stored), per pool. */
function celeryVerdict(r: BenchResults): string {
  const ours = headline(r).ours;
  const closest = r.celery.drain.filter((d) => d.acksLate && !d.ignoreResult);
  if (closest.length === 0) return '';
  const each = closest.map(
    (d) =>
      `**${ratio(ours.tasksPerSecond / d.tasksPerSecond)}** Celery's rate with \`${d.pool} -c ${d.concurrency}\` ` +
      `(a task costing the machine ${ratio(machineCost(d) / machineCost(ours))} less CPU, worker + Redis)`,
  );
  const fastest = r.celery.drain.reduce((a, b) => (b.tasksPerSecond > a.tasksPerSecond ? b : a));
  return `
For a Celery user: with Celery's settings closest to Taskfleet's defaults (\`acks_late\`, results
stored), one Taskfleet worker process drained ${each.join(' and ')}. Celery's fastest
setting here (${celeryName(fastest)}, ${int(fastest.tasksPerSecond)} tasks/s) gives up some of that, and is still
${ratio(ours.tasksPerSecond / fastest.tasksPerSecond)} slower than Taskfleet's default.`;
}

/** The commands per call that Celery's group publish costs Redis, as measured. */
function celeryEnqueueCommands(r: BenchResults): string {
  return r.celery.enqueue
    .map((e) => `${e.ignoreResult ? '`ignore_result`' : 'results stored'}: ${topCommands(e.bulkWork)}`)
    .join('; ');
}

/** How busy each drain kept Redis (its CPU per task × the rate): which consumers Redis may have limited. */
function redisShare(r: BenchResults): string {
  const busy = (d: DrainResult) => (d.work.cpuMicros * d.tasksPerSecond) / 1e6;
  const each = r.drain.map(
    (d) => `${percent(busy(d))} (${DRAIN_NAMES[d.label]}, ${fixed(d.work.cpuMicros, 1)} µs per task)`,
  );
  const near = r.drain.filter((d) => busy(d) >= 0.85).map((d) => DRAIN_NAMES[d.label]);
  return `Redis, on one thread, was busy for ${each.join(', ')} of each drain: ${
    near.length === 0 ? 'it limited none of them' : `near its limit for ${near.join(' and ')}, which it may have slowed`
  }.`;
}

function renderScale(r: BenchResults): string {
  const { nproc } = r.machine;
  const one = r.scale.find((c) => c.workers === 1) ?? (r.scale[0] as ScaleResult);
  const busiest = r.scale.reduce((a, b) => (b.tasksPerSecond > a.tasksPerSecond ? b : a));
  const redisBusy = (c: ScaleResult) => (c.tasksPerSecond * c.work.cpuMicros) / 1e6;
  const cpusBusy = (c: ScaleResult) => (c.tasksPerSecond * machineCost(c)) / 1e6 / nproc;
  /** Redis runs commands on one thread: one CPU's worth of its work per task is all it can take. */
  const redisCeiling = (c: ScaleResult) => 1e6 / c.work.cpuMicros;
  const machineCeiling = (c: ScaleResult) => (nproc * 1e6) / machineCost(c);
  const ceiling = redisCeiling(busiest);
  const workerCores = (ceiling * busiest.cpuMicros) / 1e6;
  const limit =
    redisBusy(busiest) >= 0.85
      ? `**Redis is the limit here**: with ${busiest.workers} workers it was busy ${percent(redisBusy(busiest))} of the drain.`
      : `**On these ${nproc} CPUs, the CPUs run out before Redis does**: with ${busiest.workers} worker(s), the fastest here, workers and
Redis kept the ${nproc} CPUs ${percent(cpusBusy(busiest))} busy while Redis itself was busy ${percent(redisBusy(busiest))}; worker processes beyond the
CPUs only share the same CPUs. Redis would become the limit at about ${int(ceiling)} tasks/s (1 s ÷ its
${fixed(busiest.work.cpuMicros, 1)} µs per task), which takes about ${fixed(workerCores + 1, 1)} CPUs: ${fixed(workerCores, 1)} for workers at ${fixed(busiest.cpuMicros, 1)} µs per task,
and Redis's own.`;
  return `### Scale: 1, 2 and 4 worker processes on one Redis

The drain above (${int(r.tasks)} tasks, Taskfleet's defaults, concurrency ${r.concurrency} per worker) by several
worker processes at once, each its own \`Worker\` in a process of its own, on the same queue and Redis.
They start consuming together; the clock runs from the first completion in any of them to the last in any.

${table(
  [
    'worker processes',
    'tasks/s',
    '÷ 1 worker',
    '% of pipelined XADD',
    'worker CPU µs / task (all workers)',
    'Redis CPU µs / task',
    'Redis commands / task',
    'Redis busy',
    `${nproc} CPUs busy (workers + Redis)`,
    'Redis alone could take (tasks/s)',
    `${nproc} CPUs could take (tasks/s)`,
  ],
  r.scale.map((c) => [
    String(c.workers),
    int(c.tasksPerSecond),
    ratio(c.tasksPerSecond / one.tasksPerSecond),
    percent(c.tasksPerSecond / r.raw.pipelined),
    fixed(c.cpuMicros, 1),
    fixed(c.work.cpuMicros, 1),
    fixed(c.work.commands),
    percent(redisBusy(c)),
    percent(cpusBusy(c)),
    int(redisCeiling(c)),
    int(machineCeiling(c)),
  ]),
)}

Redis runs commands on one thread, so at a given cost per task it can take at most 1 s ÷ its CPU per
task, however many workers feed it ("Redis alone could take"); the pipelined \`XADD\` ceiling above
(${int(r.raw.pipelined)}/s) bounds any Streams queue further up. Workers and Redis share the machine's ${nproc} CPUs, so
together they can take at most ${nproc} s of CPU per second ÷ their CPU per task ("${nproc} CPUs could take").
${limit}`;
}

export function renderMarkdown(r: BenchResults): string {
  const h = headline(r);
  /** A row of the drain table: any consumer's drain, beside ours and the bare loop's. */
  const drainRow = (name: string, d: Pick<DrainResult, 'tasksPerSecond' | 'cpuMicros' | 'rssPeak' | 'work'>) => [
    name,
    int(d.tasksPerSecond),
    ratio(h.ours.tasksPerSecond / d.tasksPerSecond),
    percent(d.tasksPerSecond / h.bare.tasksPerSecond),
    fixed(d.cpuMicros, 1),
    mib(d.rssPeak),
    fixed(d.work.commands),
    fixed(d.work.scripts),
    fixed(d.work.cpuMicros, 1),
    topCommands(d.work),
  ];
  const m = r.machine;
  const ourLatency = pick(r.latency, 'ours');
  const bullLatency = pick(r.latency, 'bullmq');
  const ourEnqueue = pick(r.enqueue, 'ours');
  const bullEnqueue = pick(r.enqueue, 'bullmq');
  const celeryEnqueue = r.celery.enqueue.find((e) => !e.ignoreResult) as CeleryEnqueueResult;
  const cpu = machineCost;
  const bulkCpu = (e: EnqueueResult) => e.bulkCpuMicros + e.bulkWork.cpuMicros;
  const byCpu = {
    drainVsBullmq: cpu(h.bullmq) / cpu(h.ours),
    drainVsBare: cpu(h.bare) / cpu(h.ours),
    ignoreVsBare: cpu(h.bare) / cpu(h.oursIgnore),
    bulkVsBullmq: bulkCpu(bullEnqueue) / bulkCpu(ourEnqueue),
    historyCost: h.withHistory ? 1 - cpu(h.ours) / cpu(h.withHistory) : undefined,
  };
  const historyRow =
    h.historyCost === undefined || byCpu.historyCost === undefined
      ? ''
      : `\n| drain: keeping the task history (\`history: true\`) costs ≤ ${percent(GOALS.historyCost)} of the drain rate | ${percent(h.historyCost)} | ${verdict(h.historyCost <= GOALS.historyCost, byCpu.historyCost <= GOALS.historyCost)} | ${percent(byCpu.historyCost)} |`;
  const peak = (name: ContenderName) => (r.drain.find((d) => d.label === name) as DrainResult).rssPeak;
  return `## Worker

Measured ${m.date} on ${m.nproc} CPUs (${m.cpu}), Node ${m.node}, Redis ${m.redis}, BullMQ ${m.bullmq},
ioredis ${m.ioredis}, Celery ${m.celery.celery} (kombu ${m.celery.kombu}, redis-py ${m.celery.redis}, Python ${m.celery.python})
(1-minute load average ${fixed(m.load[0])} at the start, ${fixed(m.load[1])} at the end), with

\`\`\`sh
make bench   # ${r.command}
\`\`\`

Taskfleet is the compiled package (\`taskfleet\` → \`worker/dist\`), as users run it: the bench refuses
to run its TypeScript sources, or a \`dist/\` older than them (\`make bench-worker\` builds first).
The bench starts one private \`redis-server\` (no persistence) and stops it at the end. Each consumer
runs in a process of its own (\`bench/worker-child.ts\`), so its CPU and memory are its own; the
parent enqueues, then starts the consumer and reads its timestamps from its stdout. Throughputs are
the best of ${r.rounds} rounds, the contenders' order alternating between rounds: load from elsewhere on
the machine only ever slows a round down. **Ratios come from the same run and the same Redis, which
makes them far more robust to machine load than the absolute numbers** — other work shared these
${m.nproc} CPUs — but not immune to it: a consumer that waits on round trips (BullMQ, the bare loop)
loses more to a busy machine than one that is busy computing (Taskfleet). CPU time per task (the
consumer process's user + system time over the drain, divided by the tasks) is the figure least
disturbed by load, and with Redis's own CPU per task added it is what a task costs the machine; the
goals table gives the ratios by that too (how many times less a task costs with Taskfleet than with
BullMQ; what share of Taskfleet's cost the bare loop's is).

### Goals

| goal | measured (tasks/s) | | by CPU per task, client + Redis |
| --- | --- | --- | --- |
| drain: Taskfleet ≥ ${GOALS.drainVsBullmq}× BullMQ | ${ratio(h.vsBullmq)} | ${verdict(h.goals.drainVsBullmq, byCpu.drainVsBullmq >= GOALS.drainVsBullmq)} | ${ratio(byCpu.drainVsBullmq)} |
| drain: Taskfleet ≥ ${percent(GOALS.drainVsBare)} of the bare Streams loop | ${percent(h.vsBare)} | ${verdict(h.goals.drainVsBare, byCpu.drainVsBare >= GOALS.drainVsBare)} | ${percent(byCpu.drainVsBare)} |
| drain, \`ignoreResult: true\`: Taskfleet ≥ ${percent(GOALS.ignoreVsBare)} of the bare Streams loop | ${percent(h.ignoreVsBare)} | ${verdict(h.goals.ignoreVsBare, byCpu.ignoreVsBare >= GOALS.ignoreVsBare)} | ${percent(byCpu.ignoreVsBare)} |
| bulk enqueue: Taskfleet ≥ ${GOALS.bulkVsBullmq}× BullMQ | ${ratio(h.bulk)} | ${verdict(h.goals.bulkVsBullmq, byCpu.bulkVsBullmq >= GOALS.bulkVsBullmq)} | ${ratio(byCpu.bulkVsBullmq)} |${historyRow}

Taskfleet here is what users get by default: a result backend on the broker's Redis, every outcome
stored (\`ignoreResult: false\`) before its message is acknowledged, the task history off (docs/history.md).${h.withHistory ? ' "With the task history" is the same with `history: true`.' : ''}

### Drain: ${int(r.tasks)} no-op tasks, one worker process, concurrency ${r.concurrency}

The queue is filled first; the clock runs from the consumer's first completion to its last
(completion: outcome recorded and message acknowledged). Redis's work per task is the
\`INFO commandstats\` and \`INFO cpu\` delta over the drain, startup included; commands that Lua
scripts run count besides the script call itself.

${table(
  [
    'consumer',
    'tasks/s',
    'Taskfleet ÷ it',
    '% of bare',
    'consumer CPU µs / task',
    'peak RSS',
    'Redis commands / task',
    'of which script calls',
    'Redis CPU µs / task',
    'heaviest commands / task',
  ],
  [...r.drain.map((d) => drainRow(DRAIN_NAMES[d.label], d)), ...r.celery.drain.map((d) => drainRow(celeryName(d), d))],
)}

- Taskfleet ÷ it divides the default Taskfleet row's rate by each row's.
- BullMQ runs with its defaults: \`removeOnComplete\` unset, so every completed job is kept (its hash
  stays and its id joins the completed set); lock and stalled check every 30 s.
- The bare loop is \`XREADGROUP COUNT ${r.concurrency} BLOCK\` on one stream, \`JSON.parse\` of each message
  (our envelope, so the same bytes), then one pipelined \`XACK\` + \`XDEL\` per batch: the least any
  Streams consumer can do, with no results, retries or bookkeeping — and no concurrency: it reads
  the next batch only once the last is acknowledged.
- Per task, Taskfleet runs one \`SET\` and one \`PUBLISH\` (the result and its wake-up, from one
  script call per batch) besides its share of the batched reads and acknowledgements.
- Celery drains ${int(r.celery.tasks)} tasks (it runs at about a thousand a second here; its rate is steady
  long before that), with one \`celery worker\` process: \`prefork -c 2\` is a pool process per CPU,
  \`threads -c 50\` Taskfleet's concurrency in one process. Otherwise Celery's defaults (JSON, prefetch
  multiplier 4, the Redis transport's lists), without gossip, mingle and heartbeats: a lone worker has no
  peers. \`acks_late\` acknowledges after the call, as Taskfleet does; without it, on receipt. Results
  go to Celery's Redis result backend (\`SETEX\` + \`PUBLISH\` per task) in a database of its own on
  the same server; \`ignore_result\` stores none. A call is complete, as for the others, when the
  worker's own callback after it runs: result stored and, with \`acks_late\`, message acknowledged
  (\`bench/celery/tasks.py\`). Its CPU time and peak RSS are the worker's processes' together (the RSS
  summed, so pages they share count in each).
${celeryVerdict(r)}

### Enqueue

${table(
  [
    'producer',
    `bulk, chunks of ${int(r.chunk)} (tasks/s)`,
    'producer CPU µs / task (bulk)',
    'Redis commands / task (bulk)',
    'one at a time, awaited (tasks/s)',
    `${r.inFlight} in flight (tasks/s)`,
  ],
  r.enqueue
    .map((e) => [
      NAMES[e.name],
      int(e.bulk),
      fixed(e.bulkCpuMicros, 1),
      fixed(e.bulkWork.commands),
      int(e.awaited),
      int(e.inFlight),
    ])
    .concat(
      r.celery.enqueue.map((e) => [
        `Celery, ${e.ignoreResult ? '`ignore_result`' : 'results stored'}`,
        int(e.bulk),
        fixed(e.bulkCpuMicros, 1),
        fixed(e.bulkWork.commands),
        int(e.awaited),
        'n/a',
      ]),
    ),
)}
| Taskfleet ÷ BullMQ | ${ratio(h.bulk)} | ${ratio(ourEnqueue.bulkCpuMicros / bullEnqueue.bulkCpuMicros)} | | ${ratio(ourEnqueue.awaited / bullEnqueue.awaited)} | ${ratio(ourEnqueue.inFlight / bullEnqueue.inFlight)} |
| Taskfleet ÷ Celery, results stored | ${ratio(ourEnqueue.bulk / celeryEnqueue.bulk)} | ${ratio(ourEnqueue.bulkCpuMicros / celeryEnqueue.bulkCpuMicros)} | | ${ratio(ourEnqueue.awaited / celeryEnqueue.awaited)} | |

In the last rows, rates above 1× and CPU below 1× favour Taskfleet.
Bulk: Taskfleet \`task.applyBulk\` against BullMQ \`queue.addBulk\`, the ${int(r.tasks)} tasks each drain
starts with; the bare row pipelines \`XADD\`s of one pre-encoded envelope, the ceiling for a client.
One at a time: \`task.delay()\` against \`queue.add()\` (${int(r.singleTasks)} tasks), each awaited before the
next, then with ${r.inFlight} calls in flight.
Celery has no bulk publish: \`group(...).apply_async()\`, its way to send many calls at once (here in
chunks of ${int(r.chunk)}, the ${int(r.celery.tasks)} tasks its drains start from), still publishes each call on its own, a
round trip each (${celeryEnqueueCommands(r)}). One at a time is \`apply_async()\` in a loop (${int(r.singleTasks)} tasks), which
returns once the message is published, like an awaited \`delay()\`; a Python producer has no calls in flight
without threads, so that column is left out.

### Enqueue → start latency at light load

${int(r.latencyTasks)} tasks, one every ~${r.latencyIntervalMs} ms, to a worker started and idle; the handler subtracts the
enqueue time carried in its argument from its start time (a microsecond wall clock shared by the
processes: \`performance.timeOrigin + performance.now()\`).

${table(
  ['consumer', 'p50 (ms)', 'p99 (ms)', 'max (ms)'],
  r.latency.map((l) => [NAMES[l.name], fixed(l.p50), fixed(l.p99), fixed(l.max)]),
)}
| Taskfleet ÷ BullMQ (lower is better) | ${ratio(ourLatency.p50 / bullLatency.p50)} | ${ratio(ourLatency.p99 / bullLatency.p99)} | |

### Worker memory (RSS of the consumer process)

${table(
  ['consumer', 'idle, after start', 'peak during the drain', 'idle, above the harness', 'peak, above the harness'],
  (['ours', 'bullmq', 'bare'] as const).map((name) => [
    NAMES[name],
    mib(pick(r.latency, name).rssIdle),
    mib(peak(name)),
    mib(pick(r.latency, name).rssIdle - r.harnessRss),
    mib(peak(name) - r.harnessRss),
  ]),
)}
| Taskfleet ÷ BullMQ | ${ratio(ourLatency.rssIdle / bullLatency.rssIdle)} | ${ratio(h.ours.rssPeak / h.bullmq.rssPeak)} | ${ratio((ourLatency.rssIdle - r.harnessRss) / (bullLatency.rssIdle - r.harnessRss))} | ${ratio((h.ours.rssPeak - r.harnessRss) / (h.bullmq.rssPeak - r.harnessRss))} |

Idle is sampled one second after the worker started on an empty queue; the peak every 50 ms during
the drain (\`process.memoryUsage.rss()\`). The harness — Node and the bench's TypeScript, which Node
strips in memory — takes ${mib(r.harnessRss)} by itself (a child that loads no contender); every figure includes
it. Taskfleet itself runs from its compiled \`dist/\`, as a deployed worker does.

### The server's own limit: \`redis-benchmark\`

\`redis-benchmark -n ${int(r.raw.ops)} -c 50 -P 16 XADD bench-raw * m <${r.raw.payloadBytes}-byte envelope>\`: **${int(r.raw.pipelined)} XADD/s**.
With \`-c 1 -P 1\` (one client, one command at a time, a round trip each): **${int(r.raw.single)} XADD/s**.

\`XADD\` of a message the size of ours is the one command every task costs a Streams queue, so
pipelined \`XADD\` bounds any of them from above (plain \`SET\`/\`GET\` would say nothing about streams):
the drain rates above are ${percent(h.ours.tasksPerSecond / r.raw.pipelined)} (Taskfleet), ${percent(h.bullmq.tasksPerSecond / r.raw.pipelined)} (BullMQ) and
${percent(h.bare.tasksPerSecond / r.raw.pipelined)} (bare) of it. The one-at-a-time figure is the round-trip floor that an awaited
\`delay()\` (${int(ourEnqueue.awaited)}/s) pays on top of its own work. ${redisShare(r)}

${renderScale(r)}

### Where our worker's time goes

V8's CPU profiler (\`node --cpu-prof\`'s, started through \`node:inspector\` at the first completion
and stopped at the last, so that startup is left out) on the worker process during a separate drain
of ${int(r.tasks)} tasks, not the timed one. Self time, as a share of the ${int(r.profile.busyMs)} ms the process was
not idle:

${table(
  ['share', 'function', 'where'],
  r.profile.functions.map((f) => [percent(f.share), `\`${f.name}\``, f.where]),
)}

By where the code lives: ${r.profile.places.map((p) => `${p.where} ${percent(p.share)}`).join(', ')}.

The profiler samples on a wall clock: on a busy machine, a socket write that wakes Redis is often
where the process loses its CPU to another, so \`writeUtf8String\` reads larger than the CPU it uses
(the consumer CPU time per task, above, counts only the time the process ran). Garbage collection is the
cost of the objects each call allocates (envelope, context, promises, result record); the rest is
spread thinly over the worker, ioredis and prom-client.
`;
}
