/**
 * The console's JSON API, as the page and scripts see it (docs/console.md, and the OpenAPI document at
 * /api/openapi.json). Every response is JSON; errors are `{ error: { code, message } }` with a 4xx/5xx.
 */
import type { HistoryEntry, HistoryState } from '../history/entry.ts';
import type { ResultRecord } from '../results/result.ts';

/** Who may do what: `admin` acts; `readonly` sees everything and every action answers 403. */
export type Role = 'admin' | 'readonly';

/** GET /api/session: who the console thinks you are, and the token every action must carry. */
export interface Session {
  user: string;
  role: Role;
  /** Send it as the `x-taskfleet-csrf` header on every POST. */
  csrf: string;
  /** The broker's URL with any password replaced by `***`. */
  broker: string;
  /** Whether workers keep a task history here (Redis with history on); without it, Tasks is empty. */
  history: boolean;
  /** How often /api/events pushes an overview, in ms. */
  refreshMs: number;
}

export interface WorkerView {
  id: string;
  hostname: string;
  queue: string;
  concurrency: number;
  /** Calls running now. */
  running: number;
  reserved: number;
  /** Calls finished since the worker started, by outcome: success, failure, retry, revoked, and dead-letter reasons. */
  processed: Record<string, number>;
  startedAt: number;
  /** The last heartbeat (epoch ms). */
  lastHeartbeat: number;
  version: string;
  active: { id: string; task: string; startedAt: number; attempt: number }[];
}

export interface QueueView {
  name: string;
  ready: number;
  delayed: number;
  inFlight: number;
  /** Dead letters kept; undefined where the broker cannot count them. */
  deadLetters?: number;
  /** Age of the oldest waiting (ready) task, in seconds; 0 when none waits; undefined when unknown. */
  oldestAgeSeconds?: number;
  /** Messages ever added and delivered (counters: the page turns them into rates). */
  added?: number;
  delivered?: number;
  /** Entries in the task history. */
  historySize?: number;
  /** Tasks added per second, and calls finished per second by this queue's workers, over the last tick. */
  arrivalsPerSecond?: number;
  completionsPerSecond?: number;
}

export interface TaskQueueView {
  namespace: string;
  name: string;
  queue: string;
  desiredReplicas?: number;
  readyReplicas?: number;
  replicas?: number;
  conditions: { type: string; status: string; reason?: string; message?: string }[];
  /** The operator's last scaling decisions, newest first. */
  lastScale?: { at?: string; from?: number; to?: number; reason?: string }[];
}

/** GET /api/overview, and each `overview` event of GET /api/events. */
export interface Overview {
  at: number;
  workers: WorkerView[];
  queues: QueueView[];
  /** Present when a kubeconfig answers; `error` says why not when one was given and did not. */
  kubernetes?: { taskQueues: TaskQueueView[]; error?: string };
}

/** GET /api/queues/{queue}/tasks: one page of the history, newest first. */
export interface TaskPage {
  entries: HistoryEntry[];
  /** Pass as `cursor` for the next page; absent on the last one. */
  next?: string;
  scanned: number;
}

/** GET /api/tasks/{id}[?queue=]: a call, wherever it is known. */
export interface TaskView {
  id: string;
  /** Its latest attempt in the history, if kept. */
  entry?: HistoryEntry;
  /** Its record in the result backend, if kept. */
  result?: ResultRecord;
  /** The calls of its workflow (same rootId) found in the history, itself included. */
  workflow: HistoryEntry[];
}

export type Percentiles = { p50: number; p90: number; p99: number };

/** GET /api/queues/{queue}/latency: percentiles over the newest entries of the history (ms). */
export interface LatencyView {
  sampled: number;
  duration: Percentiles | null;
  wait: Percentiles | null;
}

/** One queue at one tick of the console's sampler (every refresh interval since the console started). */
export interface QueuePoint {
  ready: number;
  delayed: number;
  inFlight: number;
  deadLetters?: number;
  oldestAgeSeconds?: number;
  /** Tasks added per second since the previous tick (Redis; Kafka keeps no such counter). */
  arrivalsPerSecond?: number;
  /** Calls this queue's workers finished per second since the previous tick, and the same by outcome. */
  completionsPerSecond?: number;
  outcomesPerSecond: Record<string, number>;
  /** Duration and queue wait (ms) of the calls that finished since the previous tick, from the history. */
  duration?: Percentiles;
  wait?: Percentiles;
  /** Summed over the TaskQueues of this queue, when a kubeconfig answers. */
  desiredReplicas?: number;
  readyReplicas?: number;
}

export interface SeriesPoint {
  at: number;
  /** At most 20 queues, the first by name. */
  queues: Record<string, QueuePoint>;
}

/** GET /api/queues/{queue}/series: the queue's points, oldest first, since the console started. */
export interface SeriesView {
  queue: string;
  /** Time between points (the console's refresh), and the most points kept. */
  intervalMs: number;
  capacity: number;
  points: (QueuePoint & { at: number })[];
}

/** A filter for bulk actions: as the tasks query (task, state, worker, since, until). */
export interface TaskFilter {
  task?: string;
  state?: HistoryState;
  worker?: string;
  since?: number;
  until?: number;
}

/** POST /api/tasks/revoke */
export interface RevokeRequest {
  ids: string[];
  terminate?: boolean;
}
/** POST /api/queues/{queue}/tasks/retry: `ids`, or every FAILURE/REVOKED call matching `filter`. */
export interface RetryRequest {
  ids?: string[];
  filter?: TaskFilter;
}
export interface RetryResponse {
  retried: { from: string; id: string }[];
  /** Calls that could not be retried, and why (not found, not failed, arguments left out). */
  skipped: { id: string; why: string }[];
}
/** POST /api/queues/{queue}/dead-letters/requeue and …/delete: `ids`, or all without. */
export interface DeadLetterRequest {
  ids?: string[];
}
/** POST /api/queues/{queue}/purge: `confirm` must be the queue's name. */
export interface PurgeRequest {
  confirm: string;
}
