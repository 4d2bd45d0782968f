/**
 * One contender's Kafka consumer in a process of its own, so its CPU and memory are its own:
 * `node bench/kafka/consumer-child.ts '<ChildConfig as JSON>'`. It reports on stdout (see protocol.ts)
 * and exits when its work is done, or when the parent goes away (its stdin closes).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildConfig, type ChildMessage, type ContenderName, now, type StartConsumer } from './protocol.ts';

const IDLE_SETTLE_MS = 1000;
const RSS_SAMPLE_MS = 50;

const config = JSON.parse(process.argv[2] ?? '') as ChildConfig;
const send = (message: ChildMessage) => process.stdout.write(`${JSON.stringify(message)}\n`);
process.stdin.on('end', () => process.exit(3)).resume();

if (config.mode === 'baseline') {
  await sleep(IDLE_SETTLE_MS);
  send({ type: 'baseline', rss: process.memoryUsage.rss() });
  process.exit(0);
}

// Only this contender's module is loaded: another's libraries would count in this process's memory.
const modules: Record<ContenderName, () => Promise<{ startConsumer: StartConsumer }>> = {
  ours: () => import('./ours.ts'),
  'bare-kafkajs': () => import('./bare-kafkajs.ts'),
  'bare-platformatic': () => import('./bare-platformatic.ts'),
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
let cpuMicros = 0;
const { promise: finished, resolve: finish } = Promise.withResolvers<void>();

sampleRss();
const sampler = setInterval(sampleRss, RSS_SAMPLE_MS);
// The clock and the CPU count start before the consumer does: connecting, joining the group and the
// first fetch are part of draining a topic with a fresh consumer.
const started = now();
const cpuAtStart = process.cpuUsage();
const stop = await startConsumer(config, {
  completed(ok) {
    const t = now();
    if (count === 0) first = t;
    last = t;
    if (!ok) failures++;
    if (++count === config.tasks) {
      const { user, system } = process.cpuUsage(cpuAtStart);
      cpuMicros = user + system;
      finish();
    }
  },
});
await finished;
clearInterval(sampler);
sampleRss();
send({ type: 'done', started, first, last, count, failures, cpuMicros, rssPeak });
await stop();
process.exit(0);
