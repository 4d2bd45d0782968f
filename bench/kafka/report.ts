import { writeDocSection } from '../support/doc.ts';
import type { ContenderName } from './protocol.ts';

export interface DrainResult {
  name: ContenderName;
  /** tasks / seconds: the drain rate, startup included. */
  tasksPerSecond: number;
  /** From the consumer's start to its last completion. */
  seconds: number;
  /** From the consumer's start to its first completion: connecting, joining the group, the first batch. */
  firstDoneSeconds: number;
  /** The consumer process's CPU time (user + system) over `seconds`, per 1,000 tasks. */
  cpuSecondsPer1000: number;
  /** The Kafka broker's CPU time over the drain (child started to done), per 1,000 tasks. */
  brokerCpuSecondsPer1000: number;
  rssPeak: number;
}

export interface EnqueueResult {
  name: ContenderName;
  /** Records (tasks) per second, in batches of `chunk`, each batch acknowledged (acks = all). */
  perSecond: number;
  /** The producing process's CPU time, per 1,000 records. */
  cpuSecondsPer1000: number;
  /** The Kafka broker's CPU time while it took them, per 1,000 records. */
  brokerCpuSecondsPer1000: number;
}

export interface KafkaBenchResults {
  machine: {
    nproc: number;
    cpu: string;
    node: string;
    java: string;
    kafka: string;
    kafkajs: string;
    platformatic: string;
    date: string;
    /** The 1-minute load average when the run started and when it ended. */
    load: [number, number];
  };
  command: string;
  contenders: ContenderName[];
  tasks: number;
  partitions: number;
  rounds: number;
  chunk: number;
  /** ours: the worker's concurrency. */
  concurrency: number;
  drain: DrainResult[];
  enqueue: EnqueueResult[];
  /** RSS of a child process that loads no contender. */
  harnessRss: number;
}

export const GOALS = { oursVsKafkajs: 0.8, platformaticVsKafkajs: 1.5 };

const NAMES: Record<ContenderName, string> = {
  ours: 'Taskfleet `Worker` (KafkaBroker)',
  'bare-kafkajs': 'bare kafkajs loop (ceiling)',
  'bare-platformatic': 'bare @platformatic/kafka loop',
};
const PRODUCERS: Record<ContenderName, string> = {
  ours: 'Taskfleet `task.applyBulk`',
  'bare-kafkajs': 'kafkajs `producer.send`',
  'bare-platformatic': '@platformatic/kafka `producer.send`',
};

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits = 2) => n.toFixed(digits);
const ratio = (n: number | undefined) => (n === undefined ? '—' : `${n.toFixed(2)}×`);
const percent = (n: number | undefined) => (n === undefined ? '—' : `${Math.round(n * 100)}%`);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const cpu = (seconds: number) => seconds.toFixed(4);

function find<T extends { name: ContenderName }>(rows: T[], name: ContenderName): T | undefined {
  return rows.find((r) => r.name === name);
}

/** The figures the goal and question are judged on; undefined where a contender did not run. */
export function headline(r: KafkaBenchResults) {
  const kafkajs = find(r.drain, 'bare-kafkajs');
  const vsKafkajs = (name: ContenderName) => {
    const d = find(r.drain, name);
    return d && kafkajs ? d.tasksPerSecond / kafkajs.tasksPerSecond : undefined;
  };
  // By CPU: how many times less a task costs the machine (consumer + broker) than with bare kafkajs.
  const byCpu = (name: ContenderName) => {
    const d = find(r.drain, name);
    const total = (x: DrainResult) => x.cpuSecondsPer1000 + x.brokerCpuSecondsPer1000;
    return d && kafkajs ? total(kafkajs) / total(d) : undefined;
  };
  const kafkajsEnqueue = find(r.enqueue, 'bare-kafkajs');
  const enqueueVsKafkajs = (name: ContenderName) => {
    const e = find(r.enqueue, name);
    return e && kafkajsEnqueue ? e.perSecond / kafkajsEnqueue.perSecond : undefined;
  };
  const ours = vsKafkajs('ours');
  const platformatic = vsKafkajs('bare-platformatic');
  return {
    vsKafkajs,
    byCpu,
    enqueueVsKafkajs,
    ours,
    platformatic,
    oursMet: ours === undefined ? undefined : ours >= GOALS.oursVsKafkajs,
    platformaticFaster: platformatic === undefined ? undefined : platformatic >= GOALS.platformaticVsKafkajs,
  };
}

const verdict = (met: boolean | undefined) => (met === undefined ? 'not measured' : met ? 'met' : 'MISSED');

/** A short plain-text account for the terminal. */
export function renderSummary(r: KafkaBenchResults): string {
  const h = headline(r);
  const lines = [
    '',
    `drain (${int(r.tasks)} tasks, ${r.partitions} partitions, one consumer process, best of ${r.rounds}; from consumer start):`,
    ...r.drain.map(
      (d) =>
        `  ${d.name.padEnd(18)} ${int(d.tasksPerSecond).padStart(8)} tasks/s  ${percent(h.vsKafkajs(d.name)).padStart(5)} of kafkajs  ` +
        `first task done after ${fixed(d.firstDoneSeconds)} s  ` +
        `CPU ${cpu(d.cpuSecondsPer1000)} s/1000 (broker ${cpu(d.brokerCpuSecondsPer1000)})  peak RSS ${mib(d.rssPeak)}`,
    ),
    `  ours/kafkajs ${percent(h.ours)} (goal ≥ ${percent(GOALS.oursVsKafkajs)}: ${verdict(h.oursMet)})` +
      `   platformatic/kafkajs ${ratio(h.platformatic)} (≥ ${ratio(GOALS.platformaticVsKafkajs)}: ${h.platformaticFaster === undefined ? 'not measured' : h.platformaticFaster ? 'yes' : 'no'})`,
    `enqueue (batches of ${int(r.chunk)}, acks = all):`,
    ...r.enqueue.map(
      (e) =>
        `  ${e.name.padEnd(18)} ${int(e.perSecond).padStart(8)} records/s  ${ratio(h.enqueueVsKafkajs(e.name)).padStart(6)} kafkajs  ` +
        `CPU ${cpu(e.cpuSecondsPer1000)} s/1000 (broker ${cpu(e.brokerCpuSecondsPer1000)})`,
    ),
    `harness RSS ${mib(r.harnessRss)}`,
    '',
  ];
  return lines.join('\n');
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function platformaticSentence(h: ReturnType<typeof headline>): string {
  if (h.platformatic === undefined) return '';
  const cost = `a task cost it ${ratio(1 / (h.byCpu('bare-platformatic') as number))} the CPU, consumer and broker, that it cost kafkajs`;
  return h.platformaticFaster
    ? `**The bare @platformatic/kafka loop drained ${ratio(h.platformatic)} as fast as the bare kafkajs loop: at or above
the ${ratio(GOALS.platformaticVsKafkajs)} the issue asks to report** (${cost}).`
    : `The bare @platformatic/kafka loop drained ${ratio(h.platformatic)} as fast as the bare kafkajs loop: below the
${ratio(GOALS.platformaticVsKafkajs)} the issue asks to report (${cost}).`;
}

export function renderMarkdown(r: KafkaBenchResults): string {
  const h = headline(r);
  const m = r.machine;
  const oursRow =
    h.ours === undefined
      ? `| drain: Taskfleet ≥ ${percent(GOALS.oursVsKafkajs)} of the bare kafkajs loop | not measured in this run (\`--contenders\` left it out) | | |`
      : `| drain: Taskfleet ≥ ${percent(GOALS.oursVsKafkajs)} of the bare kafkajs loop | ${percent(h.ours)} | **${h.oursMet ? 'met' : 'missed'}** | ${percent(h.byCpu('ours'))} |`;
  return `## Kafka

Measured ${m.date} on ${m.nproc} CPUs (${m.cpu}), Node ${m.node}, Apache Kafka ${m.kafka} (${m.java}),
kafkajs ${m.kafkajs}, @platformatic/kafka ${m.platformatic} (1-minute load average ${fixed(m.load[0])} at the start,
${fixed(m.load[1])} at the end), with

\`\`\`sh
${r.command}
\`\`\`

Taskfleet is the compiled package (\`taskfleet\` → \`worker/dist\`), as users run it: the bench refuses
to run its TypeScript sources, or a \`dist/\` older than them (\`make bench-kafka\` builds first).
The bench starts one private single-node Kafka (KRaft, \`test/stack/kafka.ts\`) and stops it at the
end. For each contender it creates a fresh ${r.partitions}-partition topic, sends ${int(r.tasks)} no-op tasks to it
(the enqueue figures), then starts one consumer in a process of its own
(\`bench/kafka/consumer-child.ts\`), so its CPU and memory are its own, and times it **from the
consumer's start until every task is consumed and its offset committed** — connecting, joining the
group and the first fetch included, as a fresh worker on a full topic pays them. The bench then checks
that the group's committed offsets add up to the ${int(r.tasks)} tasks. Throughputs are the best of ${r.rounds}
round(s), the contenders' order alternating between rounds: load from elsewhere on the machine only
ever slows a round down. Ratios come from the same run and the same broker, and are what to compare
across machines; CPU time per task (the process's user + system time over the drain) is the figure
least disturbed by load. The broker's CPU is the Kafka JVM's, read from \`/proc\` around each drain
and each enqueue.

### Goal

| goal | measured (tasks/s) | | by CPU per task, consumer + broker |
| --- | --- | --- | --- |
${oursRow}

${platformaticSentence(h)}

### Drain: ${int(r.tasks)} no-op tasks, ${r.partitions} partitions, one consumer process

${table(
  [
    'consumer',
    'tasks/s (from start)',
    '% of bare kafkajs',
    'first task done after (s)',
    'consumer CPU s / 1,000 tasks',
    'broker CPU s / 1,000 tasks',
    'peak RSS',
    'peak RSS above the harness',
  ],
  r.drain.map((d) => [
    NAMES[d.name],
    int(d.tasksPerSecond),
    percent(h.vsKafkajs(d.name)),
    fixed(d.firstDoneSeconds),
    cpu(d.cpuSecondsPer1000),
    cpu(d.brokerCpuSecondsPer1000),
    mib(d.rssPeak),
    mib(d.rssPeak - r.harnessRss),
  ]),
)}

- The bare kafkajs loop is \`consumer.run({ eachBatch, autoCommit: false })\` with kafkajs's defaults
  (one partition's batch at a time): \`JSON.parse\` of each record (our envelope, so the same bytes),
  \`resolveOffset\`, then one awaited \`commitOffsets\` per batch. No results, retries or bookkeeping:
  the ceiling.
- The bare @platformatic/kafka loop reads the consumer's stream in batches of what has been fetched
  (\`stream.read()\` until nothing is buffered), parses each record, then commits the batch's offsets
  with one awaited \`consumer.commit\` (autocommit off) before reading on.
- Both bare loops fetch at most 10 MiB at a time, 1 MiB per partition: kafkajs's defaults, set on
  @platformatic/kafka too, whose own (50 MiB, per partition too) would bring the whole topic in one
  fetch and measure that instead of the client's work per record.
- Taskfleet is one \`Worker\`, concurrency ${r.concurrency}, on \`kafka://\`; there is no result backend, so
  no result is stored. A task counts once its outcome is counted, right after its delivery is settled.
- Peak RSS is sampled every 50 ms; the harness (Node and the bench's TypeScript, which Node strips in
  memory) takes ${mib(r.harnessRss)} by itself, measured in a child that loads no contender.

### Enqueue: batches of ${int(r.chunk)}

${table(
  ['producer', 'records/s', '÷ kafkajs', 'producer CPU s / 1,000 records', 'broker CPU s / 1,000 records'],
  r.enqueue.map((e) => [
    PRODUCERS[e.name],
    int(e.perSecond),
    ratio(h.enqueueVsKafkajs(e.name)),
    cpu(e.cpuSecondsPer1000),
    cpu(e.brokerCpuSecondsPer1000),
  ]),
)}

Each producer sends the ${int(r.tasks)} tasks its drain starts with, one batch at a time, each batch
acknowledged by the broker (\`acks\` = all, no compression); the clock includes connecting, and the
bench checks that the topic then holds exactly that many records (a producer that resends a batch
after an error would duplicate tasks; each topic takes writes on every partition before the first
batch, so that none has to). The bare
producers send one pre-encoded envelope, spread over the partitions by number, so they measure the
broker and the client library; Taskfleet's \`task.applyBulk\` builds and checks an envelope per task.
`;
}

/** Replaces the Kafka section of docs/benchmarks.md (the rest of the file is kept). */
export function writeKafkaSection(section: string): Promise<string> {
  return writeDocSection('kafka', 'node bench/kafka.ts --write', section);
}
