import type { Worker } from 'taskfleet';

/**
 * Calls `completed` for each call a worker finishes. The worker counts an outcome right after its
 * delivery is settled: hooking that counter measures the worker as it ships, without an event API
 * added for the benchmarks.
 */
export function onCompletion(worker: Worker, completed: (success: boolean) => void): void {
  const counter = worker.metrics.tasks;
  const inc = counter.inc.bind(counter) as (labels: Record<string, string>) => void;
  counter.inc = ((labels: Record<string, string>) => {
    inc(labels);
    completed(labels.outcome === 'success');
  }) as typeof counter.inc;
}
