import { type Counter, type Gauge, type Histogram, Registry } from 'prom-client';
import { metricsIn } from 'taskfleet/operator';

/** A queue's gauges as last set, so that an unchanged value is not set again. */
interface QueueSeries {
  labels: { namespace: string; taskqueue: string };
  /** ready, delayed, in flight, arrival, completion, desired, current. */
  values: (number | undefined)[];
  /** Unix seconds of the last reconcile. */
  at: number;
}

/** What a reconcile observed of a queue, for its gauges. */
export interface QueueObservation {
  backlog?: { ready: number; delayed: number; inFlight: number };
  arrival?: number;
  completion?: number;
  desired: number;
  current: number;
  ready: number;
}

/** The operator's metrics. Labels: namespace and taskqueue (bounded by the TaskQueues that exist). */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly backlog: Gauge<'namespace' | 'taskqueue' | 'kind'>;
  readonly arrivalRate: Gauge<'namespace' | 'taskqueue'>;
  readonly completionRate: Gauge<'namespace' | 'taskqueue'>;
  readonly desiredReplicas: Gauge<'namespace' | 'taskqueue'>;
  readonly currentReplicas: Gauge<'namespace' | 'taskqueue'>;
  readonly readyReplicas: Gauge<'namespace' | 'taskqueue'>;
  readonly probeDuration: Histogram<'broker'>;
  readonly probeErrors: Counter<'namespace' | 'taskqueue'>;
  readonly reconcileDuration: Histogram;
  readonly reconcileErrors: Counter;
  readonly reconcileConflicts: Counter;
  readonly scaleEvents: Counter<'namespace' | 'taskqueue' | 'direction'>;
  readonly lastReconcile: Gauge<'namespace' | 'taskqueue'>;
  readonly apiRequests: Counter<'verb' | 'resource'>;
  readonly leader: Gauge;
  readonly #queues = new Map<string, QueueSeries>();

  constructor() {
    const metric = metricsIn(this.registry);
    const queue = ['namespace', 'taskqueue'] as const;
    this.backlog = metric.gauge(
      'taskfleet_queue_backlog',
      'Calls in the queue at the last probe, by kind (ready, delayed, in_flight).',
      [...queue, 'kind'],
    );
    this.arrivalRate = metric.gauge('taskfleet_queue_arrival_rate', 'Calls enqueued per second.', queue);
    this.completionRate = metric.gauge('taskfleet_queue_completion_rate', 'Calls finished per second.', queue);
    this.desiredReplicas = metric.gauge(
      'taskfleet_queue_desired_replicas',
      'Replicas the last decision asked for.',
      queue,
    );
    this.currentReplicas = metric.gauge('taskfleet_queue_replicas', 'Replicas of the worker Deployment.', queue);
    this.readyReplicas = metric.gauge(
      'taskfleet_queue_ready_replicas',
      'Ready replicas of the worker Deployment (pods passing their readiness probe).',
      queue,
    );
    this.probeDuration = metric.histogram(
      'taskfleet_probe_duration_seconds',
      'How long probing a broker took.',
      ['broker'],
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    );
    this.probeErrors = metric.counter('taskfleet_probe_errors_total', 'Failed probes.', queue);
    this.reconcileDuration = metric.histogram(
      'taskfleet_reconcile_duration_seconds',
      'How long one reconcile took.',
      [],
      [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    );
    this.reconcileErrors = metric.counter(
      'taskfleet_reconcile_errors_total',
      'Reconciles that failed and were retried.',
    );
    this.reconcileConflicts = metric.counter(
      'taskfleet_reconcile_conflicts_total',
      'Reconciles run again because a write was decided on a cached object that had moved on (409).',
    );
    this.scaleEvents = metric.counter('taskfleet_scale_events_total', 'Replica changes made, by direction.', [
      ...queue,
      'direction',
    ]);
    const queues = this.#queues;
    this.lastReconcile = metric.gauge(
      'taskfleet_queue_last_reconcile_timestamp_seconds',
      'When the queue was last probed and decided on (Unix time): alert on time() minus this.',
      queue,
      // Set at scrape time from what each reconcile recorded: it changes on every poll of every queue.
      function collect() {
        for (const q of queues.values()) this.set(q.labels, q.at);
      },
    );
    this.apiRequests = metric.counter(
      'taskfleet_operator_api_requests_total',
      'Requests the operator sent to the Kubernetes API server (watches excluded), by verb and resource.',
      ['verb', 'resource'],
    );
    this.leader = metric.gauge('taskfleet_operator_leader', '1 while this operator is the leader.');
  }

  /**
   * Records a reconcile of the queue `key` (namespace/name) and what it observed. prom-client hashes the
   * labels on every set, and this runs on every poll of every queue, so only values that changed are set.
   */
  observeQueue(key: string, namespace: string, taskqueue: string, o: QueueObservation, now: number): void {
    let q = this.#queues.get(key);
    if (!q) {
      q = { labels: { namespace, taskqueue }, values: [], at: 0 };
      this.#queues.set(key, q);
    }
    q.at = now / 1000;
    const { values, labels } = q;
    const changed = (i: number, value: number | undefined) => {
      if (value === undefined || values[i] === value) return false;
      values[i] = value;
      return true;
    };
    if (changed(0, o.backlog?.ready)) this.backlog.set({ ...labels, kind: 'ready' }, o.backlog!.ready);
    if (changed(1, o.backlog?.delayed)) this.backlog.set({ ...labels, kind: 'delayed' }, o.backlog!.delayed);
    if (changed(2, o.backlog?.inFlight)) this.backlog.set({ ...labels, kind: 'in_flight' }, o.backlog!.inFlight);
    if (changed(3, o.arrival)) this.arrivalRate.set(labels, o.arrival!);
    if (changed(4, o.completion)) this.completionRate.set(labels, o.completion!);
    if (changed(5, o.desired)) this.desiredReplicas.set(labels, o.desired);
    if (changed(6, o.current)) this.currentReplicas.set(labels, o.current);
    if (changed(7, o.ready)) this.readyReplicas.set(labels, o.ready);
  }

  /** Forgets a deleted TaskQueue's series. */
  forget(namespace: string, taskqueue: string): void {
    this.#queues.delete(`${namespace}/${taskqueue}`);
    for (const gauge of [
      this.arrivalRate,
      this.completionRate,
      this.desiredReplicas,
      this.currentReplicas,
      this.readyReplicas,
      this.lastReconcile,
    ]) {
      gauge.remove({ namespace, taskqueue });
    }
    for (const kind of ['ready', 'delayed', 'in_flight']) this.backlog.remove({ namespace, taskqueue, kind });
  }
}
