import type { Worker } from 'taskfleet';

/**
 * Calls `completed` for each call of `task` a worker finishes. The worker counts an outcome in its
 * task's tally right after the delivery is settled (WorkerMetrics.forTask): watching that count
 * measures the worker as it ships, without an event API added for the benchmarks.
 */
export function onCompletion(worker: Worker, task: string, completed: (success: boolean) => void): void {
  const { outcomes } = worker.metrics.forTask(worker.queue, task);
  for (const outcome of ['success', 'failure'] as const) {
    let count = outcomes[outcome];
    Object.defineProperty(outcomes, outcome, {
      get: () => count,
      set: (value: number) => {
        count = value;
        completed(outcome === 'success');
      },
    });
  }
}
