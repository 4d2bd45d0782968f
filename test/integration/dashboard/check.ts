/**
 * Checks a Grafana dashboard's PromQL against what the components export: every expression is read
 * (panel targets, annotations, templating queries), and each metric and label it names is looked up in
 * the /metrics text of the component that exports it.
 */
import { type Reading, readExpression, readTemplateQuery } from './promql.ts';

/** One PromQL expression of the dashboard, and where it is. */
export interface DashboardQuery {
  /** `panel "Backlog per queue"`, `annotation "Scale events"`, `variable "queue"`. */
  where: string;
  expr: string;
  kind: 'expression' | 'template';
}

interface Json {
  [key: string]: unknown;
}
const objects = (value: unknown): Json[] =>
  Array.isArray(value) ? value.filter((v): v is Json => typeof v === 'object' && v !== null) : [];
const isJson = (value: unknown): value is Json => typeof value === 'object' && value !== null;

/** Every panel, including those nested in rows. */
export function panelsOf(dashboard: Json): Json[] {
  return objects(dashboard.panels).flatMap((p) => [p, ...objects(p.panels)]);
}

/** Every PromQL expression of a dashboard. */
export function dashboardQueries(dashboard: Json): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const panel of panelsOf(dashboard)) {
    for (const target of objects(panel.targets)) {
      if (typeof target.expr === 'string') {
        out.push({ where: `panel ${JSON.stringify(panel.title)}`, expr: target.expr, kind: 'expression' });
      }
    }
  }
  const annotations = isJson(dashboard.annotations) ? objects(dashboard.annotations.list) : [];
  for (const annotation of annotations) {
    // Grafana moves a Prometheus annotation's legacy `expr` into `target.expr` when it loads one.
    const expr = annotation.expr ?? (isJson(annotation.target) ? annotation.target.expr : undefined);
    if (typeof expr === 'string') {
      out.push({ where: `annotation ${JSON.stringify(annotation.name)}`, expr, kind: 'expression' });
    }
  }
  const variables = isJson(dashboard.templating) ? objects(dashboard.templating.list) : [];
  for (const variable of variables) {
    if (variable.type !== 'query') continue;
    const query = isJson(variable.query) ? variable.query.query : variable.query;
    if (typeof query === 'string') {
      out.push({ where: `variable ${JSON.stringify(variable.name)}`, expr: query, kind: 'template' });
    }
  }
  return out;
}

/** What one component's /metrics says: each sample name with the labels its series carry, and the families' types. */
export interface Exposition {
  component: string;
  /** Sample name (`x_bucket`, `x_sum`, `x_total`...) → label names seen on its series. */
  samples: Map<string, Set<string>>;
  /** Family name (from `# TYPE`) → type. */
  types: Map<string, string>;
  /**
   * Labels a series gets from the scrape rather than from the exposition (`instance`, `job`, and for
   * pods scraped through their `prometheus.io/*` annotations, `namespace` and `pod`).
   */
  targetLabels: ReadonlySet<string>;
}

/** Reads the Prometheus text format (0.0.4). */
export function parseExposition(component: string, text: string, targetLabels: Iterable<string>): Exposition {
  const samples = new Map<string, Set<string>>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!sample) throw new Error(`${component} /metrics: cannot read the line ${JSON.stringify(line)}`);
    const labels = samples.get(sample[1]!) ?? new Set<string>();
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(m[1]!);
    samples.set(sample[1]!, labels);
  }
  return { component, samples, types, targetLabels: new Set(targetLabels) };
}

const histogramSuffixes = ['_bucket', '_sum', '_count'];

/** The family a sample name belongs to: `x_bucket` → `x` when `x` is a histogram. */
export function familyOf(exposition: Exposition, name: string): string | undefined {
  if (exposition.types.has(name)) return name;
  for (const suffix of histogramSuffixes) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
    const type = base !== undefined ? exposition.types.get(base) : undefined;
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base;
  }
  return undefined;
}

type Lookup = { labels: ReadonlySet<string>; component: string } | { problem: string };

function lookup(expositions: readonly Exposition[], metric: string): Lookup {
  for (const e of expositions) {
    const family = familyOf(e, metric);
    if (family === undefined) continue;
    const seen = e.samples.get(metric);
    if (seen) return { labels: new Set([...seen, ...e.targetLabels]), component: e.component };
    if (e.types.get(metric) === 'histogram') {
      return { problem: `${metric} is a histogram: query ${metric}_bucket, ${metric}_sum or ${metric}_count` };
    }
    return {
      problem: `${metric} (${family}, ${e.component}) has no series in /metrics: the test must make the ${e.component} record one`,
    };
  }
  const exporters = expositions.map((e) => `the ${e.component}'s`).join(' or ');
  return { problem: `unknown metric ${metric}: not in ${exporters} /metrics` };
}

export interface Problem {
  where: string;
  expr: string;
  problem: string;
}

/** Reads one query; a syntax error is a problem too. */
export function readQuery(query: DashboardQuery): Reading | Problem {
  try {
    return query.kind === 'template' ? readTemplateQuery(query.expr) : readExpression(query.expr);
  } catch (error) {
    return { where: query.where, expr: query.expr, problem: (error as Error).message };
  }
}

/** Each unknown metric, and each label a matcher or clause names that the series it applies to do not carry. */
export function findProblems(queries: readonly DashboardQuery[], expositions: readonly Exposition[]): Problem[] {
  const problems: Problem[] = [];
  for (const query of queries) {
    const reading = readQuery(query);
    if ('problem' in reading) {
      problems.push(reading);
      continue;
    }
    const report = (problem: string) => {
      if (!problems.some((p) => p.where === query.where && p.problem === problem)) {
        problems.push({ where: query.where, expr: query.expr, problem });
      }
    };
    const found = new Map<string, Lookup>();
    const look = (metric: string) => {
      let l = found.get(metric);
      if (!l) {
        l = lookup(expositions, metric);
        found.set(metric, l);
      }
      return l;
    };
    if (reading.selectors.length === 0) report('selects no series');
    for (const selector of reading.selectors) {
      if (selector.metric === undefined) {
        report('a selector without a metric name (or with a __name__ regex): name the metric');
        continue;
      }
      const l = look(selector.metric);
      if ('problem' in l) {
        report(l.problem);
        continue;
      }
      for (const m of selector.matchers) {
        if (!l.labels.has(m.label)) report(`unknown label ${m.label} on ${selector.metric} (${l.component})`);
      }
    }
    for (const clause of reading.clauses) {
      const scope = clause.scope.filter((s) => s.metric !== undefined && !('problem' in look(s.metric)));
      for (const label of clause.labels) {
        const carriers = scope.filter((s) => (look(s.metric!) as { labels: ReadonlySet<string> }).labels.has(label));
        // group_left(x) copies x from the "one" side: one operand having it is enough.
        const enough =
          clause.keyword === 'group_left' || clause.keyword === 'group_right'
            ? carriers.length > 0 || scope.length === 0
            : carriers.length === scope.length;
        if (!enough) {
          const missing = scope.filter((s) => !carriers.includes(s)).map((s) => s.metric);
          report(`unknown label ${label} in ${clause.keyword}(...): not on ${[...new Set(missing)].join(', ')}`);
        }
      }
    }
  }
  return problems;
}

/** Every metric name the dashboard selects. */
export function metricsUsed(queries: readonly DashboardQuery[]): Set<string> {
  const out = new Set<string>();
  for (const query of queries) {
    const reading = readQuery(query);
    if ('problem' in reading) continue;
    for (const s of reading.selectors) if (s.metric !== undefined) out.add(s.metric);
  }
  return out;
}

/** Problems, one line each, for a failure message. */
export function describe(problems: readonly Problem[]): string {
  return problems.map((p) => `- ${p.where}: ${p.problem}\n    ${p.expr}`).join('\n');
}
