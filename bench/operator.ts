/**
 * The operator benchmark: reaction time (backlog → replicas) and capacity (thousands of TaskQueues on
 * one operator) against a real control plane and Redis, with the operator running as its own process,
 * compiled (operator/dist: run `npm run build` first), as the Helm chart runs it.
 *
 *   node bench/operator.ts [--quick] [--spikes 50] [--queues 2000] [--steady 60] [--only reaction|capacity]
 *                          [--node-options '<NODE_OPTIONS>'] [--write] [--json FILE]
 *
 * --quick: 10 spikes, 200 TaskQueues, short steady windows, for development. --write rewrites the
 * "Operator" section of docs/benchmarks.md (`make bench-operator` does); --json FILE keeps the raw numbers.
 * --node-options: the operator's NODE_OPTIONS; by default the chart's (`nodeOptions` in
 * charts/taskfleet/values.yaml; docs/operator.md, "Memory"). The second capacity operator runs with
 * Node's defaults, for comparison.
 */
import { copyFile, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type CapacityResult, measureCapacity } from './operator/capacity.ts';
import { startCluster, startOperator } from './operator/cluster.ts';
import { assertBuilt, chartNodeOptions } from './operator/deployed.ts';
import { type Floor, measureFloors } from './operator/floors.ts';
import { loadAverage, machine } from './operator/measure.ts';
import { measureReaction, type ReactionResult } from './operator/reaction.ts';
import { type OperatorBenchResults, renderOperatorSection, writeOperatorSection } from './operator/report.ts';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    spikes: { type: 'string' },
    queues: { type: 'string' },
    namespaces: { type: 'string' },
    steady: { type: 'string' },
    'node-options': { type: 'string' },
    only: { type: 'string' },
    write: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const quick = flags.quick;
const spikes = Number(flags.spikes ?? (quick ? 10 : 50));
const queues = Number(flags.queues ?? (quick ? 200 : 2000));
const namespaces = Number(flags.namespaces ?? (quick ? 2 : 4));
const steadySeconds = Number(flags.steady ?? (quick ? 20 : 60));
for (const [name, value] of Object.entries({ spikes, queues, namespaces, steadySeconds })) {
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be an integer ≥ 1, not ${value}`);
}
if (flags.only !== undefined && !['reaction', 'capacity'].includes(flags.only)) {
  throw new Error(`--only takes reaction or capacity, not ${flags.only}`);
}
try {
  assertBuilt();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
  process.exit(2);
}
const nodeOptions = (flags['node-options'] ?? chartNodeOptions()).trim();
const runReaction = flags.only !== 'capacity';
const runCapacity = flags.only !== 'reaction';

const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);
// The command as `make bench-operator` runs it (where the raw numbers go is beside the point).
const shown = process.argv.slice(2).filter((arg, i, all) => arg !== '--json' && all[i - 1] !== '--json');
const command = `node bench/operator.ts ${shown.join(' ')}`.trim();
const loadBefore = loadAverage();
const cluster = await startCluster(progress);
let reaction: ReactionResult | undefined;
let capacity: CapacityResult | undefined;
let floors: { defaults: Floor[]; flags: Floor[] } | undefined;
try {
  if (runReaction) {
    const operator = await startOperator(cluster, 'bench-reaction', nodeOptions);
    try {
      progress(`reaction: ${spikes} spikes of 500 calls, poll interval 1 s`);
      reaction = await measureReaction(cluster, operator, { spikes, spikeSize: 500, pollIntervalSeconds: 1 }, progress);
    } finally {
      await operator.stop();
    }
  }
  if (runCapacity) {
    progress(`capacity: ${queues} TaskQueues in ${namespaces} namespaces`);
    capacity = await measureCapacity(
      cluster,
      {
        queues,
        namespaces,
        busyEvery: 20,
        trickleQueues: Math.max(1, Math.round(queues / 100)),
        trickleRate: 5,
        steadySeconds,
        warmSteadySeconds: Math.max(10, Math.round(steadySeconds / 2)),
        idleSecondsBeforeZero: 15,
        nodeOptions,
      },
      progress,
    );
    floors = { defaults: await measureFloors(''), flags: await measureFloors(nodeOptions) };
  }
} finally {
  // The operators' logs outlive the stack's directory, for a look at what they did.
  const logs = await mkdtemp(join(tmpdir(), 'taskfleet-bench-operator-'));
  for (const file of await readdir(cluster.stack.info.dir)) {
    if (file.startsWith('operator-') && file.endsWith('.log'))
      await copyFile(join(cluster.stack.info.dir, file), join(logs, file));
  }
  progress(`operator logs: ${logs}`);
  await cluster.stop();
}

const results: OperatorBenchResults = {
  machine: { ...machine(), kubernetes: cluster.kube.version, redis: cluster.redis.version },
  date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  command,
  nodeOptions,
  load: { before: loadBefore, after: loadAverage() },
  ...(reaction ? { reaction } : {}),
  ...(capacity ? { capacity } : {}),
  ...(floors ? { floors } : {}),
};
if (flags.json) await writeFile(flags.json, `${JSON.stringify(results, null, 2)}\n`);
const section = renderOperatorSection(results);
if (flags.write) progress(`wrote ${await writeOperatorSection(section)}`);
else process.stdout.write(`${section}\n`);
