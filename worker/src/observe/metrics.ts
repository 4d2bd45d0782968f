import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** How a call ended, as the `outcome` label says it. */
export type Outcome = 'success' | 'failure' | 'retry' | 'revoked' | 'expired' | 'dead_lettered';

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
    const registers = [this.registry];
    this.tasks = new Counter({
      name: 'taskfleet_tasks_total',
      help: 'Task calls finished, by how they ended.',
      labelNames: ['queue', 'task', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'taskfleet_task_duration_seconds',
      help: 'How long handlers ran.',
      labelNames: ['queue', 'task'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    });
    this.wait = new Histogram({
      name: 'taskfleet_task_queue_wait_seconds',
      help: 'Time from enqueue (or due time, for delayed calls) to start.',
      labelNames: ['queue', 'task'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
      registers,
    });
    this.inFlight = new Gauge({
      name: 'taskfleet_tasks_in_flight',
      help: 'Calls running on this worker now.',
      labelNames: ['queue'],
      registers,
    });
    this.retries = new Counter({
      name: 'taskfleet_task_retries_total',
      help: 'Retries scheduled.',
      labelNames: ['queue', 'task'],
      registers,
    });
    this.deadLetters = new Counter({
      name: 'taskfleet_dead_letters_total',
      help: 'Messages moved to the dead-letter store, by reason.',
      labelNames: ['queue', 'reason'],
      registers,
    });
    this.info = new Gauge({
      name: 'taskfleet_worker_info',
      help: 'Always 1; the labels describe the worker.',
      labelNames: ['queue', 'version', 'concurrency'],
      registers,
    });
  }
}
