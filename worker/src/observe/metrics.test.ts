import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { TalliedHistogram, WorkerMetrics } from './metrics.ts';

test('a tallied histogram is exposed exactly as a prom-client histogram of the same observations', async () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const observations = [0, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 2, 30];
  const ours = new Registry();
  const theirs = new Registry();
  const tallied = new TalliedHistogram<'queue' | 'task'>(ours, 'h_seconds', 'help', [1, 0.1, 0.01, 0.001]);
  const reference = new Histogram({
    name: 'h_seconds',
    help: 'help',
    labelNames: ['queue', 'task'],
    buckets,
    registers: [theirs],
  });
  for (const [i, value] of observations.entries()) {
    const labels = { queue: 'q', task: i % 2 ? 'a' : 'b' };
    tallied.series(labels).observe(value);
    reference.observe(labels, value);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
  assert.equal(tallied.series({ queue: 'q', task: 'a' }), tallied.series({ queue: 'q', task: 'a' }), 'one series');
});

test('counts made in the tallies reach the counters and gauges at each scrape, once each', async () => {
  const metrics = new WorkerMetrics();
  const tally = metrics.forTask('q', 'ping');
  assert.equal(metrics.forTask('q', 'ping'), tally, 'the same tally for the same task');
  let running = 3;
  metrics.countInFlight('q', () => running);
  tally.outcomes.success += 5;
  tally.outcomes.retry += 2;
  tally.retries += 2;
  const value = async (name: string, labels: Record<string, string>) => {
    const metric = await metrics.registry.getSingleMetric(name)?.get();
    return metric?.values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
  };
  await metrics.registry.metrics();
  assert.equal(await value('taskfleet_tasks_total', { task: 'ping', outcome: 'success' }), 5);
  assert.equal(await value('taskfleet_task_retries_total', { task: 'ping' }), 2);
  assert.equal(await value('taskfleet_tasks_in_flight', { queue: 'q' }), 3);
  // Scraped again: only what was counted since is added.
  tally.outcomes.success += 1;
  running = 0;
  const text = await metrics.registry.metrics();
  assert.match(text, /taskfleet_tasks_total\{queue="q",task="ping",outcome="success"\} 6\n/);
  assert.match(text, /taskfleet_task_retries_total\{queue="q",task="ping"\} 2\n/);
  assert.match(text, /taskfleet_tasks_in_flight\{queue="q"\} 0\n/);
});
