import {
  type CollectFunction,
  Counter,
  Gauge,
  Histogram,
  type MetricObjectWithValues,
  type MetricValueWithName,
  Registry,
} from 'prom-client';

/** How a call ended, as the `outcome` label says it. */
export type Outcome = 'success' | 'failure' | 'retry' | 'revoked' | 'expired' | 'dead_lettered';

/** The buckets of a task's durations, in seconds: from a millisecond to five minutes. */
const TASK_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];

/**
 * Makes metrics registered with `registry` and no other (not prom-client's global one), named, described
 * and labelled with the label names given (none unless given); a histogram with its buckets. The worker's
 * and the operator's metrics are made with it.
 */
export function metricsIn(registry: Registry) {
  const registers = [registry];
  return {
    /** `collect`, if given, runs at each scrape, to bring the counter up to date then. */
    counter: <L extends string = string>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
      collect?: CollectFunction<Counter<L>>,
    ): Counter<L> => new Counter({ name, help, labelNames, registers, ...(collect ? { collect } : {}) }),
    /** `collect`, if given, runs at each scrape, to set the gauge then. */
    gauge: <L extends string = string>(
      name: string,
      help: string,
      labelNames: readonly L[] = [],
      collect?: CollectFunction<Gauge<L>>,
    ): Gauge<L> => new Gauge({ name, help, labelNames, registers, ...(collect ? { collect } : {}) }),
    histogram: <L extends string = string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      buckets: number[],
    ): Histogram<L> => new Histogram({ name, help, labelNames, buckets, registers }),
  };
}

/** Observations of one histogram series, counted in plain numbers (see TalliedHistogram). */
export class HistogramSeries {
  readonly #bounds: readonly number[];
  /** Per bucket, not cumulative; the last is above every bound. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram the hot path observes without prom-client: each series (its labels given once) counts
 * in plain numbers, and the registry reads them only when scraped, through the metric interface
 * prom-client's registries read (name, help, type, get): the exposition is a prom-client histogram's,
 * cumulative `_bucket`s with `le`, `_sum`, `_count`.
 */
export class TalliedHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: number[];
  readonly #series = new Map<string, { labels: Partial<Record<L, string>>; tally: HistogramSeries }>();

  constructor(registry: Registry, name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = [...buckets].sort((a, b) => a - b);
    registry.registerMetric(this as unknown as Histogram<L>);
  }

  /** The series of these labels, to observe into; the same one for the same labels. */
  series(labels: Partial<Record<L, string>>): HistogramSeries {
    const key = JSON.stringify(labels);
    let entry = this.#series.get(key);
    if (!entry) {
      entry = { labels, tally: new HistogramSeries(this.#bounds) };
      this.#series.set(key, entry);
    }
    return entry.tally;
  }

  async get(): Promise<MetricObjectWithValues<MetricValueWithName<L>>> {
    const values: MetricValueWithName<L>[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, tally } of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += tally.buckets[i] as number;
        values.push({ metricName: bucket, labels: { le, ...labels } as never, value: cumulative });
      });
      values.push({ metricName: bucket, labels: { le: '+Inf', ...labels } as never, value: tally.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: tally.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: tally.count });
    }
    const { name, help, type, aggregator } = this;
    return { name, help, type, aggregator, values } as unknown as MetricObjectWithValues<MetricValueWithName<L>>;
  }

  reset(): void {
    this.#series.clear();
  }
}

/** What the hot path counts of one task's calls, in plain numbers (WorkerMetrics.forTask). */
export interface TaskTally {
  readonly wait: HistogramSeries;
  readonly duration: HistogramSeries;
  /** Calls finished, by outcome. */
  readonly outcomes: Record<Outcome, number>;
  retries: number;
}

/**
 * The worker's metrics. Labels stay low-cardinality: queue, task and outcome — never a task id.
 * Each worker has its own registry, so several in one process (tests) do not collide. What every call
 * counts (outcomes, retries, wait and duration, calls in flight) is counted in plain numbers per task
 * (forTask) and handed to prom-client when /metrics is scraped: no label hashing per call.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly tasks: Counter<'queue' | 'task' | 'outcome'>;
  readonly duration: TalliedHistogram<'queue' | 'task'>;
  readonly wait: TalliedHistogram<'queue' | 'task'>;
  readonly inFlight: Gauge<'queue'>;
  readonly retries: Counter<'queue' | 'task'>;
  readonly deadLetters: Counter<'queue' | 'reason'>;
  readonly info: Gauge<'queue' | 'version' | 'concurrency'>;
  /** Per queue, per task: the tally, and how much of it the prom-client counters have been given. */
  readonly #tallies = new Map<
    string,
    Map<string, { queue: string; task: string; tally: TaskTally; handed: Pick<TaskTally, 'outcomes' | 'retries'> }>
  >();
  /** Calls in flight per queue, read at scrape time. */
  readonly #inFlight = new Map<string, () => number>();

  constructor() {
    const metric = metricsIn(this.registry);
    const call = ['queue', 'task'] as const;
    // The counters take what the tallies counted since the last scrape, at each scrape, before they are read.
    const handOver = () => this.#handOver();
    this.tasks = metric.counter(
      'taskfleet_tasks_total',
      'Task calls finished, by how they ended.',
      [...call, 'outcome'],
      handOver,
    );
    this.duration = new TalliedHistogram(
      this.registry,
      'taskfleet_task_duration_seconds',
      'How long handlers ran.',
      TASK_SECONDS,
    );
    this.wait = new TalliedHistogram(
      this.registry,
      'taskfleet_task_queue_wait_seconds',
      'Time from enqueue (or due time, for delayed calls) to start.',
      TASK_SECONDS,
    );
    this.inFlight = metric.gauge('taskfleet_tasks_in_flight', 'Calls running on this worker now.', ['queue'], () => {
      for (const [queue, running] of this.#inFlight) this.inFlight.set({ queue }, running());
    });
    this.retries = metric.counter('taskfleet_task_retries_total', 'Retries scheduled.', call, handOver);
    this.deadLetters = metric.counter(
      'taskfleet_dead_letters_total',
      'Messages moved to the dead-letter store, by reason.',
      ['queue', 'reason'],
    );
    this.info = metric.gauge('taskfleet_worker_info', 'Always 1; the labels describe the worker.', [
      'queue',
      'version',
      'concurrency',
    ]);
  }

  /** The plain counters of one task's calls on `queue`, made once: what the hot path counts into. */
  forTask(queue: string, task: string): TaskTally {
    let tasks = this.#tallies.get(queue);
    if (!tasks) {
      tasks = new Map();
      this.#tallies.set(queue, tasks);
    }
    let entry = tasks.get(task);
    if (!entry) {
      const labels = { queue, task };
      const counts = (): Pick<TaskTally, 'outcomes' | 'retries'> => ({
        outcomes: { success: 0, failure: 0, retry: 0, revoked: 0, expired: 0, dead_lettered: 0 },
        retries: 0,
      });
      const tally = { wait: this.wait.series(labels), duration: this.duration.series(labels), ...counts() };
      entry = { queue, task, tally, handed: counts() };
      tasks.set(task, entry);
    }
    return entry.tally;
  }

  /** Reports the calls in flight on `queue` at each scrape. */
  countInFlight(queue: string, running: () => number): void {
    this.#inFlight.set(queue, running);
  }

  /** Adds to the prom-client counters what the tallies counted since the last hand-over. */
  #handOver(): void {
    for (const { queue, task, tally, handed } of [...this.#tallies.values()].flatMap((t) => [...t.values()])) {
      for (const outcome of Object.keys(tally.outcomes) as Outcome[]) {
        const delta = tally.outcomes[outcome] - handed.outcomes[outcome];
        if (delta > 0) this.tasks.inc({ queue, task, outcome }, delta);
        handed.outcomes[outcome] = tally.outcomes[outcome];
      }
      const retries = tally.retries - handed.retries;
      if (retries > 0) this.retries.inc({ queue, task }, retries);
      handed.retries = tally.retries;
    }
  }
}
