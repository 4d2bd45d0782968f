/**
 * One contender's consumer in a process of its own, so its memory is its own:
 * `node bench/worker-child.ts '<ChildConfig as JSON>'`. It reports on stdout (see support/protocol.ts),
 * takes the parent's commands on stdin (share mode), and exits when its work is done, or when the
 * parent goes away (its stdin closes).
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ChildConfig,
  type ChildMessage,
  now,
  type ParentCommand,
  PROGRESS_MS,
  type StartConsumer,
} from './support/protocol.ts';

const IDLE_SETTLE_MS = 1000;
const RSS_SAMPLE_MS = 50;
/** share mode: the CPU time is read at a completion at most this often (ms), not at every one. */
const CPU_SAMPLE_MS = 1;

const config = JSON.parse(process.argv[2] ?? '') as ChildConfig;
const send = (message: ChildMessage) => process.stdout.write(`${JSON.stringify(message)}\n`);
const commands = new Map<ParentCommand, PromiseWithResolvers<void>>([
  ['go', Promise.withResolvers<void>()],
  ['report', Promise.withResolvers<void>()],
]);
createInterface({ input: process.stdin })
  .on('line', (line) => commands.get(line as ParentCommand)?.resolve())
  .on('close', () => process.exit(3));

if (config.mode === 'baseline') {
  await sleep(IDLE_SETTLE_MS);
  send({ type: 'ready', rssIdle: process.memoryUsage.rss() });
  process.exit(0);
}

// Only this contender's module is loaded: another's libraries would count in this process's memory.
const modules: Record<ChildConfig['contender'], () => Promise<{ startConsumer: StartConsumer }>> = {
  ours: () => import('./contenders/ours.ts'),
  bullmq: () => import('./contenders/bullmq.ts'),
  bare: () => import('./contenders/bare.ts'),
};
const { startConsumer } = await modules[config.contender]();

let rssPeak = 0;
const sampleRss = () => {
  rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
};
let first = 0;
let last = 0;
let count = 0;
let failures = 0;
let cpuAtFirst = process.cpuUsage();
let cpuAtLast = cpuAtFirst;
let cpuReadAt = 0;
let cpuMicros = 0;
const latencies: number[] = [];
const { promise: finished, resolve: finish } = Promise.withResolvers<void>();
// Profiling the drain alone leaves out startup (loading modules, stripping TypeScript), which
// `node --cpu-prof` would include.
const profiler = config.profile ? new Session() : undefined;
profiler?.connect();
const tick = () => {
  const t = now();
  if (count === 0) {
    first = t;
    cpuAtFirst = process.cpuUsage();
    void profiler?.post('Profiler.enable').then(() => profiler.post('Profiler.start'));
  }
  last = t;
  count++;
  if (config.mode === 'share') {
    // Which completion is the last is known only once every worker's count is in: keep the CPU time
    // of a recent one (getrusage at every completion would cost more than it measures).
    if (t - cpuReadAt >= CPU_SAMPLE_MS) {
      cpuAtLast = process.cpuUsage();
      cpuReadAt = t;
    }
  } else if (count === config.tasks) {
    const { user, system } = process.cpuUsage(cpuAtFirst);
    cpuMicros = user + system;
    finish();
  }
};

if (config.mode === 'share') {
  send({ type: 'ready', rssIdle: process.memoryUsage.rss() });
  await commands.get('go')?.promise;
}
const stop = await startConsumer(config, {
  started(arg) {
    if (config.mode !== 'latency') return;
    latencies.push(now() - arg);
    tick();
  },
  completed(ok) {
    if (!ok) failures++;
    if (config.mode !== 'latency') tick();
  },
});

if (config.mode === 'latency') {
  await sleep(IDLE_SETTLE_MS);
  send({ type: 'ready', rssIdle: process.memoryUsage.rss() });
}
sampleRss();
const sampler = setInterval(sampleRss, RSS_SAMPLE_MS);
if (config.mode === 'share') {
  let reported = 0;
  const progress = setInterval(() => {
    if (count === reported) return;
    reported = count;
    send({ type: 'progress', count });
  }, PROGRESS_MS);
  await commands.get('report')?.promise;
  clearInterval(progress);
  cpuMicros = cpuAtLast.user - cpuAtFirst.user + cpuAtLast.system - cpuAtFirst.system;
} else await finished;
clearInterval(sampler);
sampleRss();
if (profiler && config.profile) {
  const { profile } = await profiler.post('Profiler.stop');
  await writeFile(config.profile, JSON.stringify(profile));
}
send({ type: 'done', first, last, count, failures, cpuMicros, rssPeak, latencies });
await stop();
process.exit(0);
