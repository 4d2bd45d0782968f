/**
 * The Grafana dashboard (dashboards/taskfleet.json) reads only what Taskfleet exports. Every PromQL
 * expression in it — panel queries, annotations, variables — is read, and each metric and label it names
 * is looked up in the /metrics of a real worker (that ran a success, a retry, a failure and a dead
 * letter) and of a real operator (reconciling a TaskQueue that scaled up and one whose broker is down),
 * so that every labelled series exists. With promtool built, Prometheus' own parser checks every
 * expression and its linter checks both /metrics pages.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { Taskfleet } from 'taskfleet';
import { freePort } from '../../stack/process.ts';
import { cacheDir, versions } from '../../stack/versions.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { inNamespace } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';
import { probe, sample } from '../../support/worker-tools.ts';
import {
  type DashboardQuery,
  dashboardQueries,
  describe,
  type Exposition,
  findProblems,
  metricsUsed,
  panelsOf,
  parseExposition,
} from './check.ts';

const dashboardFile = new URL('../../../dashboards/taskfleet.json', import.meta.url).pathname;
// biome-ignore lint/suspicious/noExplicitAny: reading the dashboard's JSON in assertions
const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as Record<string, any>;

/**
 * Labels a series gets from its scrape, not from /metrics. Worker pods carry the operator's
 * `prometheus.io/scrape` annotations; the usual pod scrape job (Prometheus' kubernetes-pods example, or a
 * PodMonitor) adds `namespace` and `pod`. The operator must be scraped with honor_labels, so that its own
 * `namespace` label (the TaskQueue's) is kept: the dashboard uses no scrape label of the operator's but
 * `instance`, which every target has.
 */
const workerTargetLabels = ['instance', 'job', 'namespace', 'pod'];
const operatorTargetLabels = ['instance', 'job'];

const redisUrl = (await useRedis()).url;

// ---- A worker that has run every outcome the dashboard shows ----
async function workerMetrics(): Promise<string> {
  const app = await testApp();
  const queue = app.defaultQueue;
  const ok = app.task('ok', () => 'ok');
  const flaky = app.task('flaky', { maxRetries: 1, retryDelay: 10 }, () => {
    throw new Error('always fails');
  });
  const worker = await startWorker(app, { metricsPort: 0 });
  assert.equal(await (await ok.delay()).get({ timeout: 10_000 }), 'ok');
  await assert.rejects((await flaky.delay()).get({ timeout: 10_000 }), /always fails/);
  // A producer that knows a task this worker does not run: its call is dead-lettered (unknown-task).
  const producer = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix: app.prefix, defaultQueue: queue });
  after(() => producer.close());
  const ghost = producer.task('ghost', () => null);
  await assert.rejects((await ghost.delay()).get({ timeout: 10_000 }), /dead-lettered \(unknown-task\)/);
  return eventually('the worker to count the dead letter', async () => {
    const text = (await probe(worker, '/metrics')).body;
    return sample(text, 'taskfleet_dead_letters_total', { queue, reason: 'unknown-task' }) === 1 ? text : undefined;
  });
}

// ---- An operator with a queue that scaled up and a queue whose broker is unreachable ----
async function operatorMetrics(): Promise<string> {
  const namespace = `dash-${randomUUID().slice(0, 8)}`;
  const prefix = `dash-${randomUUID().slice(0, 8)}`;
  const queue = `busy-${randomUUID().slice(0, 6)}`;
  const kubeconfig = await operatorKubeconfig(namespace);
  const metricsPort = await freePort();
  const operator = startOperator(kubeconfig, namespace, 'operator', {}, { metricsPort });
  const { applyTaskQueue: apply } = inNamespace(namespace);
  const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };
  const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix });
  after(() => app.close());
  await app
    .task('noop', () => null)
    .applyBulk(
      Array.from({ length: 250 }, () => []),
      { queue },
    );
  await apply('busy', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 100 },
  });
  await apply('unreachable', {
    broker: { redis: { url: 'redis://127.0.0.1:1', prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const expected: [string, Record<string, string>][] = [
    ['taskfleet_queue_backlog', { namespace, taskqueue: 'busy', kind: 'ready' }],
    ['taskfleet_queue_desired_replicas', { namespace, taskqueue: 'busy' }],
    ['taskfleet_scale_events_total', { namespace, taskqueue: 'busy', direction: 'up' }],
    ['taskfleet_probe_errors_total', { namespace, taskqueue: 'unreachable' }],
    ['taskfleet_probe_duration_seconds_count', { broker: 'redis' }],
    ['taskfleet_queue_last_reconcile_timestamp_seconds', { namespace, taskqueue: 'unreachable' }],
    // Rates need two probes of the broker.
    ['taskfleet_queue_arrival_rate', { namespace, taskqueue: 'busy' }],
    ['taskfleet_queue_completion_rate', { namespace, taskqueue: 'busy' }],
  ];
  // A labelled series appears once it is first set or incremented.
  const missing = () => expected.filter(([name, labels]) => sample(text, name, labels) === undefined);
  let text = '';
  await eventually(
    'the operator to export the series of both queues',
    async () => {
      text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return missing().length === 0;
    },
    60_000,
  ).catch((error: Error) => {
    throw new Error(
      `${error.message}\nmissing: ${JSON.stringify(missing())}\noperator output:\n${operator.output().slice(-3000)}`,
    );
  });
  return text;
}

const [workerText, operatorText] = await Promise.all([workerMetrics(), operatorMetrics()]);
const expositions: Exposition[] = [
  parseExposition('worker', workerText, workerTargetLabels),
  parseExposition('operator', operatorText, operatorTargetLabels),
];
const queries = dashboardQueries(dashboard);
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, kept as is in the JSON
const datasource = { type: 'prometheus', uid: '${datasource}' };

test('the dashboard reads a Prometheus data source variable and filters by namespace and queue', () => {
  assert.equal(dashboard.uid, 'taskfleet');
  assert.equal(dashboard.schemaVersion, 39);
  const variables = dashboard.templating.list as { name: string; type: string; query: unknown; definition?: string }[];
  assert.deepEqual(
    variables.map((v) => `${v.name}:${v.type}`),
    ['datasource:datasource', 'namespace:query', 'queue:query'],
  );
  assert.equal(variables[0]!.query, 'prometheus');
  for (const v of variables.slice(1)) {
    assert.equal(v.definition, (v.query as { query: string }).query, `variable ${v.name}: definition is its query`);
  }
  const ids = new Set<unknown>();
  for (const panel of panelsOf(dashboard)) {
    assert.ok(typeof panel.id === 'number' && !ids.has(panel.id), `panel ids are unique numbers: ${panel.id}`);
    ids.add(panel.id);
    if (panel.type === 'row') continue;
    const where = `panel ${JSON.stringify(panel.title)}`;
    assert.deepEqual(panel.datasource, datasource, where);
    assert.ok(typeof panel.description === 'string' && panel.description.length > 0, `${where} says what it shows`);
    const targets = panel.targets as Record<string, unknown>[];
    assert.ok(targets.length > 0, `${where} has queries`);
    for (const t of targets) {
      assert.deepEqual(t.datasource, datasource, where);
      assert.equal(typeof t.expr, 'string', where);
    }
    assert.equal(new Set(targets.map((t) => t.refId)).size, targets.length, `${where}: refIds are unique`);
  }
  for (const a of dashboard.annotations.list.filter((a: { builtIn?: number }) => !a.builtIn)) {
    assert.deepEqual(a.datasource, datasource, `annotation ${a.name}`);
  }
  // The filters reach every query but the operator-wide ones.
  for (const q of queries) {
    if (/taskfleet_(reconcile|probe_duration|operator_leader)/.test(q.expr) && !/taskqueue=/.test(q.expr)) continue;
    if (q.where === 'variable "namespace"') continue;
    assert.match(q.expr, /namespace=~"\$namespace"/, `${q.where} filters by namespace: ${q.expr}`);
    if (q.where !== 'variable "queue"') {
      assert.match(q.expr, /(task)?queue=~"\$queue"/, `${q.where} filters by queue: ${q.expr}`);
    }
  }
});

test('every metric and label the dashboard reads is exported by the worker or the operator', (t) => {
  assert.ok(queries.length >= 20, `read ${queries.length} queries`);
  const problems = findProblems(queries, expositions);
  assert.equal(problems.length, 0, `the dashboard reads what nothing exports:\n${describe(problems)}`);
  const used = metricsUsed(queries);
  const unused = expositions.flatMap((e) =>
    [...e.types.keys()].filter(
      (family) => ![...used].some((m) => m === family || m.startsWith(`${family}_`)) && family.startsWith('taskfleet_'),
    ),
  );
  t.diagnostic(`metrics used: ${[...used].sort().join(', ')}`);
  t.diagnostic(`exported, not on the dashboard: ${unused.join(', ')}`);
});

test('the check fails on a metric or label that does not exist, naming the panel', () => {
  const bad: DashboardQuery[] = [
    { where: 'panel "Typo"', expr: 'sum(rate(taskfleet_task_total[5m]))', kind: 'expression' },
    { where: 'panel "Worker label on operator"', expr: 'sum by (pod) (taskfleet_queue_backlog)', kind: 'expression' },
    { where: 'variable "q"', expr: 'label_values(taskfleet_tasks_total, taskqueue)', kind: 'template' },
  ];
  assert.deepEqual(
    findProblems(bad, expositions).map((p) => `${p.where}: ${p.problem}`),
    [
      'panel "Typo": unknown metric taskfleet_task_total: not in the worker\'s or the operator\'s /metrics',
      'panel "Worker label on operator": unknown label pod in by(...): not on taskfleet_queue_backlog',
      'variable "q": unknown label taskqueue in label_values(...): not on taskfleet_tasks_total',
    ],
  );
});

// ---- promtool, when built ----

/** promtool: TASKFLEET_PROMTOOL, or the cached build of PROMTOOL_VERSION (test/stack/versions.env). */
function promtoolPath(): string | undefined {
  const explicit = process.env.TASKFLEET_PROMTOOL;
  if (explicit) return explicit;
  const version = (versions as Record<string, string | undefined>).PROMTOOL_VERSION;
  const cached = version && join(cacheDir, `promtool-${version}`, 'bin', 'promtool');
  return cached && existsSync(cached) ? cached : undefined;
}
const promtool = promtoolPath();
const skipPromtool = promtool
  ? false
  : 'promtool is not built: build it (see docs/dashboard.md, "Checking the dashboard") and set TASKFLEET_PROMTOOL, ' +
    'or add PROMTOOL_VERSION to test/stack/versions.env and build it into the stack cache';
const run = promisify(execFile);

async function runPromtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  const child = run(promtool!, args, { encoding: 'utf8' });
  if (input !== undefined) child.child.stdin!.end(input);
  try {
    const { stdout, stderr } = await child;
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: (e.stdout ?? '') + (e.stderr ?? '') };
  }
}

test('promtool: every expression parses as PromQL', { skip: skipPromtool }, async () => {
  // Grafana substitutes its variables before Prometheus sees the query; these stand in for them.
  const substitute = (expr: string) =>
    expr
      .replaceAll('$__rate_interval', '1m')
      .replaceAll('$__interval', '30s')
      .replaceAll('$__range', '1h')
      .replace(/\$\{?(namespace|queue)\}?/g, '.*');
  const rules = queries
    .filter((q) => q.kind === 'expression')
    .map((q, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(substitute(q.expr))}`);
  const dir = await mkdtemp(join(tmpdir(), 'taskfleet-dashboard-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'rules.yaml');
  await writeFile(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
  const { code, output } = await runPromtool(['check', 'rules', '--lint=none', file]);
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

/**
 * What promtool's linter says of our /metrics and that we accept, each with why. Anything else fails.
 * Empty: both pages lint clean.
 */
const acceptedLint: Record<string, string[]> = { worker: [], operator: [] };

for (const [component, text] of [
  ['worker', workerText],
  ['operator', operatorText],
] as const) {
  test(`promtool check metrics: the ${component}'s /metrics`, { skip: skipPromtool }, async (t) => {
    // promtool says nothing of an empty page either: first make sure it reads what it is given.
    const sanity = await runPromtool(['check', 'metrics'], '# TYPE x_milliseconds gauge\nx_milliseconds 1\n');
    assert.match(sanity.output, /use base unit "seconds"/);
    const { code, output } = await runPromtool(['check', 'metrics'], text);
    const findings = output
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
    for (const f of findings) t.diagnostic(f);
    assert.ok(code === 0 || code === 3, `promtool could not read the page (exit ${code}):\n${output}`);
    const unexpected = findings.filter((f) => !acceptedLint[component]!.includes(f));
    assert.deepEqual(unexpected, [], `promtool finds in the ${component}'s /metrics:\n${unexpected.join('\n')}`);
  });
}
