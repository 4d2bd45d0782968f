import { type CollectFunction, Counter, Gauge, Histogram, Registry } from 'prom-client';

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
    counter: <L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> =>
      new Counter({ name, help, labelNames, registers }),
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

/**
 * The worker's metrics. Labels stay low-cardinality: queue, task and outcome — never a task id.
 * Each worker has its own registry, so several in one process (tests) do not collide.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly tasks: Counter<'queue' | 'task' | 'outcome'>;
  readonly duration: Histogram<'queue' | 'task'>;
  readonly wait: Histogram<'queue' | 'task'>;
  readonly inFlight: Gauge<'queue'>;
  readonly retries: Counter<'queue' | 'task'>;
  readonly deadLetters: Counter<'queue' | 'reason'>;
  readonly info: Gauge<'queue' | 'version' | 'concurrency'>;

  constructor() {
    const metric = metricsIn(this.registry);
    const call = ['queue', 'task'] as const;
    this.tasks = metric.counter('taskfleet_tasks_total', 'Task calls finished, by how they ended.', [
      ...call,
      'outcome',
    ]);
    this.duration = metric.histogram('taskfleet_task_duration_seconds', 'How long handlers ran.', call, TASK_SECONDS);
    this.wait = metric.histogram(
      'taskfleet_task_queue_wait_seconds',
      'Time from enqueue (or due time, for delayed calls) to start.',
      call,
      TASK_SECONDS,
    );
    this.inFlight = metric.gauge('taskfleet_tasks_in_flight', 'Calls running on this worker now.', ['queue']);
    this.retries = metric.counter('taskfleet_task_retries_total', 'Retries scheduled.', call);
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
}
