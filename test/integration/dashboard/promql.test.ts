/**
 * The PromQL reader and the dashboard check, on tricky expressions and on a made-up /metrics page: no
 * stack needed. dashboard.test.ts runs the same check against a real worker and a real operator.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DashboardQuery, dashboardQueries, findProblems, parseExposition } from './check.ts';
import { PromqlSyntaxError, readExpression, readTemplateQuery, tokenize } from './promql.ts';

const metrics = (expr: string) => readExpression(expr).selectors.map((s) => s.metric);
const clauses = (expr: string) =>
  readExpression(expr).clauses.map((c) => ({
    keyword: c.keyword,
    labels: c.labels,
    scope: c.scope.map((s) => s.metric),
  }));

test('tokens: durations, numbers, strings with escapes, raw strings, Grafana variables, ranges', () => {
  const tokens = tokenize(
    `x{a="q\\"uote"} offset -1h30m > 0.5e1 + 0x1F + inf [5m:$__interval] \`raw\\\` $q \${ns:regex}`,
  );
  assert.deepEqual(
    tokens.map((t) => `${t.kind}:${t.text}`),
    [
      'identifier:x',
      'punct:{',
      'identifier:a',
      'operator:=',
      'string:q"uote',
      'punct:}',
      'identifier:offset',
      'operator:-',
      'duration:1h30m',
      'operator:>',
      'number:0.5e1',
      'operator:+',
      'number:0x1F',
      'operator:+',
      'identifier:inf',
      'range:5m:$__interval',
      'string:raw\\',
      'variable:$q',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable, not a template
      'variable:${ns:regex}',
    ],
  );
});

test('functions, aggregations, keywords, offsets and @ are not metrics', () => {
  assert.deepEqual(
    metrics(
      'histogram_quantile(0.99, sum by (le) (rate(a_bucket[$__rate_interval] offset 1d))) > bool 0 and b @ end()',
    ),
    ['a_bucket', 'b'],
  );
  assert.deepEqual(metrics('time() - max(c)'), ['c']);
  assert.deepEqual(metrics('sum without (pod) (d) unless on (queue) e or vector(1)'), ['d', 'e']);
  assert.deepEqual(metrics('topk(5, f) # sum(in_a_comment)'), ['f']);
});

test('a string literal holding a metric-looking word is not a metric', () => {
  assert.deepEqual(
    metrics('label_replace(up{job="taskfleet_tasks_total"}, "dst", "taskfleet_queue_backlog", "", "")'),
    ['up'],
  );
  assert.deepEqual(readExpression('up{job="sum by (pod) (x)"}').clauses, []);
});

test('matchers, with quoted label names and __name__', () => {
  const [a, b, c] = readExpression(
    '{"metric.with.dots", "label.x"!~"v"} + {__name__="named", q=~"$queue"} + {__name__=~"r.*"}',
  ).selectors;
  assert.deepEqual(a, { metric: 'metric.with.dots', matchers: [{ label: 'label.x', op: '!~', value: 'v' }], at: 0 });
  assert.equal(b?.metric, 'named');
  assert.deepEqual(b?.matchers, [{ label: 'q', op: '=~', value: '$queue' }]);
  assert.equal(c?.metric, undefined, 'a __name__ regex names no one metric');
});

test('by and without apply to their argument, before or after it', () => {
  assert.deepEqual(clauses('sum by (queue, le) (rate(a[5m])) / sum(rate(b[5m])) by (queue)'), [
    { keyword: 'by', labels: ['queue', 'le'], scope: ['a'] },
    { keyword: 'by', labels: ['queue'], scope: ['b'] },
  ]);
  assert.deepEqual(clauses('count without () (x)'), [{ keyword: 'without', labels: [], scope: ['x'] }]);
});

test('on, ignoring and group_left apply to both operands; the right side of and/unless only filters', () => {
  assert.deepEqual(clauses('max by (ns) (a and on (instance) (leader == 1))'), [
    { keyword: 'on', labels: ['instance'], scope: ['a', 'leader'] },
    { keyword: 'by', labels: ['ns'], scope: ['a'] },
  ]);
  assert.deepEqual(clauses('f(a * ignoring (x) group_left (y) b, c)'), [
    { keyword: 'ignoring', labels: ['x'], scope: ['a', 'b'] },
    { keyword: 'group_left', labels: ['y'], scope: ['a', 'b'] },
  ]);
  assert.deepEqual(clauses('sum by (z) (a unless b or c)'), [{ keyword: 'by', labels: ['z'], scope: ['a', 'c'] }]);
});

test('Grafana templating queries: label_values(selector, label) and query_result(expr)', () => {
  const r = readTemplateQuery('label_values(m{namespace=~"$namespace"}, taskqueue)');
  assert.deepEqual(
    r.selectors.map((s) => s.metric),
    ['m'],
  );
  assert.deepEqual(r.clauses.at(-1)?.labels, ['taskqueue']);
  assert.deepEqual(
    readTemplateQuery('query_result(topk(3, sum by (q) (n)))').selectors.map((s) => s.metric),
    ['n'],
  );
  assert.throws(() => readTemplateQuery('label_values(pod)'), /names no series/);
  assert.throws(() => readTemplateQuery('metrics(taskfleet_.*)'), PromqlSyntaxError);
});

test('syntax errors say where', () => {
  assert.throws(() => readExpression('sum(rate(x[5m])'), /unclosed bracket at offset 3/);
  assert.throws(() => readExpression('x{a="b"'), /unclosed/);
  assert.throws(() => readExpression('x{a}'), /expected label="value"/);
  assert.throws(() => readExpression('x{a="b}'), /unterminated string/);
  assert.throws(() => readExpression('sum by (x)'), /applies to nothing/);
});

const page = `# HELP jobs_total Jobs.
# TYPE jobs_total counter
jobs_total{queue="a",outcome="ok"} 3
# HELP wait_seconds Wait.
# TYPE wait_seconds histogram
wait_seconds_bucket{le="1",queue="a"} 1
wait_seconds_bucket{le="+Inf",queue="a"} 1
wait_seconds_sum{queue="a"} 0.5
wait_seconds_count{queue="a"} 1
# HELP never_total Never incremented.
# TYPE never_total counter
`;

test('the check names each unknown metric and label with the panel it is in', () => {
  const expositions = [parseExposition('worker', page, ['pod'])];
  const q = (expr: string): DashboardQuery => ({ where: 'panel "P"', expr, kind: 'expression' });
  assert.deepEqual(
    findProblems(
      [
        q('sum by (queue, outcome, pod) (rate(jobs_total{queue=~"$queue"}[5m]))'),
        q('histogram_quantile(0.9, sum by (le, queue) (rate(wait_seconds_bucket[5m]))) / wait_seconds_count'),
      ],
      expositions,
    ),
    [],
  );
  const problems = findProblems(
    [
      q('rate(jobs_totl[5m])'),
      q('sum by (task) (rate(jobs_total{outcom="ok"}[5m]))'),
      q('sum by (le) (wait_seconds_sum)'),
      q('wait_seconds'),
      q('never_total'),
      q('{__name__=~"jobs.*"}'),
      q('sum(rate(x[5m])'),
    ],
    expositions,
  ).map((p) => p.problem);
  assert.deepEqual(problems, [
    "unknown metric jobs_totl: not in the worker's /metrics",
    'unknown label outcom on jobs_total (worker)',
    'unknown label task in by(...): not on jobs_total',
    'unknown label le in by(...): not on wait_seconds_sum',
    'wait_seconds is a histogram: query wait_seconds_bucket, wait_seconds_sum or wait_seconds_count',
    'never_total (never_total, worker) has no series in /metrics: the test must make the worker record one',
    'a selector without a metric name (or with a __name__ regex): name the metric',
    'unclosed bracket at offset 3: sum⟨here⟩(rate(x[5m])',
  ]);
});

test('dashboardQueries finds panel targets in rows, annotations old and new, and both forms of variable query', () => {
  const queries = dashboardQueries({
    panels: [
      { title: 'Top', targets: [{ expr: 'a' }] },
      { type: 'row', title: 'Row', panels: [{ title: 'Nested', targets: [{ expr: 'b' }, { refId: 'no expr' }] }] },
    ],
    annotations: { list: [{ name: 'old', expr: 'c' }, { name: 'new', target: { expr: 'd' } }, { name: 'builtin' }] },
    templating: {
      list: [
        { name: 'v1', type: 'query', query: 'label_values(e, x)' },
        { name: 'v2', type: 'query', query: { query: 'label_values(f, y)', refId: 'StandardVariableQuery' } },
        { name: 'ds', type: 'datasource', query: 'prometheus' },
      ],
    },
  });
  assert.deepEqual(
    queries.map((q) => `${q.where} ${q.kind}: ${q.expr}`),
    [
      'panel "Top" expression: a',
      'panel "Nested" expression: b',
      'annotation "old" expression: c',
      'annotation "new" expression: d',
      'variable "v1" template: label_values(e, x)',
      'variable "v2" template: label_values(f, y)',
    ],
  );
});
