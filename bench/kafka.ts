/**
 * The Kafka benchmark: one Taskfleet worker draining a 12-partition topic, beside a bare kafkajs loop
 * that only commits (the ceiling) and a bare @platformatic/kafka loop, on one private Kafka, in one
 * run; and the batched enqueue throughput of each producer.
 *
 *   node bench/kafka.ts [--tasks 100000] [--rounds 3] [--concurrency 50] [--quick] [--write] [--json FILE]
 *                       [--contenders ours,bare-kafkajs,bare-platformatic]
 *
 * --quick uses 10,000 tasks and one round, for development. --write rewrites the Kafka section of
 * docs/benchmarks.md; --json FILE keeps the raw numbers. Consumers run in child processes
 * (bench/kafka/consumer-child.ts). Kafka's jars come from the stack's cache (`make stack-build`).
 *
 * Taskfleet is measured as users run it: the compiled package, `taskfleet` → worker/dist. The bench
 * refuses to start when dist/ is missing or older than worker/src (run `npm run build`; `make
 * bench-kafka` builds first), or when Node resolves `taskfleet` to its sources (`--conditions=source`,
 * which the Makefile exports for the tests: run with `NODE_OPTIONS=`). Its child processes get its
 * environment with that condition stripped from NODE_OPTIONS (support/compiled.ts), so none of them
 * loads the sources either.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { startKafka } from '../test/stack/kafka.ts';
import * as bareKafkajs from './kafka/bare-kafkajs.ts';
import * as barePlatformatic from './kafka/bare-platformatic.ts';
import { startChild } from './kafka/child.ts';
import * as ours from './kafka/ours.ts';
import { CONTENDERS, type Contender, type ContenderName, now, PARTITIONS } from './kafka/protocol.ts';
import {
  type DrainResult,
  type EnqueueResult,
  type KafkaBenchResults,
  renderMarkdown,
  renderSummary,
  writeKafkaSection,
} from './kafka/report.ts';
import { assertCompiledAndFresh } from './support/compiled.ts';

assertCompiledAndFresh();
const run = promisify(execFile);

const { values: flags } = parseArgs({
  options: {
    tasks: { type: 'string' },
    rounds: { type: 'string' },
    concurrency: { type: 'string', default: '50' },
    contenders: { type: 'string', default: CONTENDERS.join(',') },
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const tasks = Number(flags.tasks ?? (flags.quick ? 10_000 : 100_000));
const rounds = Number(flags.rounds ?? (flags.quick ? 1 : 3));
const concurrency = Number(flags.concurrency);
for (const [name, value] of Object.entries({ tasks, rounds, concurrency })) {
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be an integer ≥ 1, not ${value}`);
}
const chosen = [...new Set(flags.contenders.split(',').map((name) => name.trim()))];
for (const name of chosen) {
  if (!(CONTENDERS as readonly string[]).includes(name)) {
    throw new Error(`--contenders: no contender ${JSON.stringify(name)}; choose from ${CONTENDERS.join(', ')}`);
  }
}
// In the order of CONTENDERS, whatever the order given.
const contenders = CONTENDERS.filter((name) => chosen.includes(name));

const CHUNK = 1000;
const drainTimeoutMs = 60_000 + tasks * 2;

const modules: Record<ContenderName, Contender> = {
  ours,
  'bare-kafkajs': bareKafkajs,
  'bare-platformatic': barePlatformatic,
};

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

const clockTicks = Number((await run('getconf', ['CLK_TCK'])).stdout.trim());
/** A process's CPU time so far (user + system), seconds, from /proc: the broker's, here. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

const loadAtStart = loadavg()[0] as number;
const dir = await mkdtemp(join(tmpdir(), 'taskfleet-bench-kafka-'));
const { endpoint, services } = await startKafka(dir);
const kafkaService = services.find((service) => service.name === 'kafka');
if (!kafkaService) throw new Error('startKafka started no service named kafka');
const brokerPid = kafkaService.pid;
const { brokers } = endpoint;
// Quiet: its errors are thrown, and createTopic expects some.
const kafka = new Kafka({ clientId: 'bench-admin', brokers, logLevel: logLevel.NOTHING });
const admin: Admin = kafka.admin();
await admin.connect();
progress(
  `kafka ${endpoint.version} on ${brokers.join(',')}; ${tasks} tasks, ${PARTITIONS} partitions, ${rounds} round(s); ${contenders.join(', ')}`,
);

/** Best of the rounds: load from elsewhere on the machine only ever slows a round down. */
function keepBest<T>(map: Map<string, T>, key: string, value: T, score: (t: T) => number): void {
  const current = map.get(key);
  if (!current || score(value) > score(current)) map.set(key, value);
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

/**
 * Creates a topic and waits until its partitions take writes. Leaders show in the metadata a moment
 * before the broker serves them (KRaft applies the change to its partitions asynchronously); a
 * producer that writes then gets NOT_LEADER for some partitions and, unless idempotent, resends the
 * whole batch, duplicating the records that had landed. ListOffsets answers NOT_LEADER alike, so the
 * topic is ready once it answers for every partition.
 */
async function createTopic(topic: string): Promise<void> {
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  for (const deadline = Date.now() + 30_000; ; ) {
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      if (offsets.length === PARTITIONS) return;
    } catch (error) {
      if (!(error as { retriable?: boolean }).retriable || Date.now() > deadline) throw error;
    }
    await sleep(20);
  }
}

async function endOffsets(topic: string): Promise<number> {
  return sum((await admin.fetchTopicOffsets(topic)).map((p) => Number(p.high)));
}

async function committedOffsets(groupId: string, topic: string): Promise<number> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  // A partition with nothing committed reads -1.
  return sum((offsets?.partitions ?? []).map((p) => Math.max(0, Number(p.offset))));
}

async function drain(name: ContenderName, round: number) {
  const contender = modules[name];
  const queue = `bench-${name}-${round}-${randomUUID().slice(0, 8)}`;
  const topic = contender.topicFor(queue);
  const groupId = contender.groupFor(queue);
  await createTopic(topic);
  try {
    const producer = contender.producer(brokers, queue);
    const brokerCpu0 = await cpuSeconds(brokerPid);
    const cpu0 = process.cpuUsage();
    const t0 = now();
    await producer.bulk(tasks, CHUNK);
    const enqueueSeconds = (now() - t0) / 1000;
    const { user, system } = process.cpuUsage(cpu0);
    const brokerCpu1 = await cpuSeconds(brokerPid);
    await producer.close();
    const sent = await endOffsets(topic);
    if (sent !== tasks) {
      throw new Error(
        `${name}: the topic holds ${sent} records after sending ${tasks} (a batch resent after an error?)`,
      );
    }
    const enqueue: EnqueueResult = {
      name,
      perSecond: tasks / enqueueSeconds,
      cpuSecondsPer1000: ((user + system) / 1e6 / tasks) * 1000,
      brokerCpuSecondsPer1000: ((brokerCpu1 - brokerCpu0) / tasks) * 1000,
    };

    const brokerCpu2 = await cpuSeconds(brokerPid);
    const child = startChild(
      { contender: name, mode: 'drain', brokers, queue, topic, groupId, tasks, concurrency },
      drainTimeoutMs,
    );
    const done = await child.report;
    const brokerCpu3 = await cpuSeconds(brokerPid);
    await child.exited;
    if (done.type !== 'done') throw new Error(`${name}: the child answered ${done.type}, not done`);
    if (done.failures > 0) throw new Error(`${name}: ${done.failures} of ${tasks} no-op tasks failed`);
    const committed = await committedOffsets(groupId, topic);
    if (committed !== tasks) {
      throw new Error(
        `${name}: group ${groupId} committed ${committed} of ${tasks} offsets on ${topic}` +
          (name === 'ours' ? ' (do topicFor and groupFor in bench/kafka/ours.ts match the adapter?)' : ''),
      );
    }
    const seconds = (done.last - done.started) / 1000;
    const result: DrainResult = {
      name,
      tasksPerSecond: tasks / seconds,
      seconds,
      firstDoneSeconds: (done.first - done.started) / 1000,
      cpuSecondsPer1000: (done.cpuMicros / 1e6 / tasks) * 1000,
      brokerCpuSecondsPer1000: ((brokerCpu3 - brokerCpu2) / tasks) * 1000,
      rssPeak: done.rssPeak,
    };
    progress(
      `drain ${name}: ${Math.round(result.tasksPerSecond)} tasks/s (first task done after ${result.firstDoneSeconds.toFixed(2)} s); enqueue ${Math.round(enqueue.perSecond)} records/s`,
    );
    return { result, enqueue };
  } finally {
    // Ours adds a delay and a dead-letter topic beside the queue's, named after it.
    const topics = (await admin.listTopics()).filter((t) => t === topic || t.startsWith(`${topic}.`));
    await admin.deleteTopics({ topics });
  }
}

/**
 * A fresh broker runs its code cold, and creates its offsets topic when the first group commits. Send
 * and drain some records with each bare client first (in this process), so that no contender pays for
 * either in its timed run, whichever goes first.
 */
async function warmUp() {
  const count = Math.min(tasks, 20_000);
  for (const name of ['bare-kafkajs', 'bare-platformatic'] as const) {
    const contender = modules[name];
    const queue = `bench-warm-up-${randomUUID().slice(0, 8)}`;
    const topic = contender.topicFor(queue);
    await createTopic(topic);
    const producer = contender.producer(brokers, queue);
    await producer.bulk(count, CHUNK);
    await producer.close();
    const drained = Promise.withResolvers<void>();
    let completed = 0;
    const groupId = contender.groupFor(queue);
    const stop = await contender.startConsumer(
      { contender: name, mode: 'drain', brokers, queue, topic, groupId, tasks: count, concurrency },
      {
        completed: () => {
          if (++completed === count) drained.resolve();
        },
      },
    );
    await drained.promise;
    await stop();
    await admin.deleteTopics({ topics: [topic] });
  }
  progress('warmed up the broker');
}

/** The RSS of a child that loads no contender: Node, and the TypeScript it strips, in every figure. */
async function baselineRss(): Promise<number> {
  const child = startChild(
    {
      contender: 'bare-kafkajs',
      mode: 'baseline',
      brokers,
      queue: 'none',
      topic: 'none',
      groupId: 'none',
      tasks: 0,
      concurrency,
    },
    30_000,
  );
  const report = await child.report;
  await child.exited;
  if (report.type !== 'baseline') throw new Error(`the baseline child answered ${report.type}`);
  return report.rss;
}

async function packageVersion(name: string): Promise<string> {
  const file = new URL(`../node_modules/${name}/package.json`, import.meta.url);
  return (JSON.parse(await readFile(file, 'utf8')) as { version: string }).version;
}

async function machine(): Promise<KafkaBenchResults['machine']> {
  const [nproc, cpuinfo, java, kafkajs, platformatic] = await Promise.all([
    run('nproc').then(({ stdout }) => Number(stdout.trim())),
    readFile('/proc/cpuinfo', 'utf8'),
    // `java -version` writes to stderr; its first line names the runtime and its version.
    run('java', ['-version']).then(({ stderr }) => stderr.split('\n')[0]?.replaceAll('"', '') ?? 'java'),
    packageVersion('kafkajs'),
    packageVersion('@platformatic/kafka'),
  ]);
  return {
    nproc,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    java,
    kafka: endpoint.version,
    kafkajs,
    platformatic,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    load: [loadAtStart, loadavg()[0] as number],
  };
}

try {
  await warmUp();
  const drains = new Map<string, DrainResult>();
  const enqueues = new Map<string, EnqueueResult>();
  for (let round = 0; round < rounds; round++) {
    // Alternate the order, so no contender always runs first (or last) on a warming machine.
    const order = round % 2 === 0 ? [...contenders] : [...contenders].reverse();
    for (const name of order) {
      const { result, enqueue } = await drain(name, round);
      keepBest(drains, name, result, (r) => r.tasksPerSecond);
      keepBest(enqueues, name, enqueue, (r) => r.perSecond);
    }
  }
  const harnessRss = await baselineRss();
  const results: KafkaBenchResults = {
    machine: await machine(),
    command: `node bench/kafka.ts ${process.argv.slice(2).join(' ')}`.trim(),
    contenders,
    tasks,
    partitions: PARTITIONS,
    rounds,
    chunk: CHUNK,
    concurrency,
    drain: contenders.map((name) => drains.get(name) as DrainResult),
    enqueue: contenders.map((name) => enqueues.get(name) as EnqueueResult),
    harnessRss,
  };
  process.stdout.write(renderSummary(results));
  if (flags.json) await writeFile(flags.json, `${JSON.stringify(results, null, 2)}\n`);
  if (flags.write) {
    const file = await writeKafkaSection(renderMarkdown(results));
    progress(`wrote ${file}`);
  }
} finally {
  await admin.disconnect();
  for (const service of services) await service.stop();
  await rm(dir, { recursive: true, force: true });
}
