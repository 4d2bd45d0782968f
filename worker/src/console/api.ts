/**
 * What the console reads and does, over one Taskfleet app (its broker, result backend and control
 * channel). No state of its own: every answer is read from Redis (or Kafka) when asked.
 */
import type { Taskfleet } from '../app.ts';
import type { DeadLetter } from '../brokers/broker.ts';
import { redact, redactText } from '../brokers/redact.ts';
import { TaskfleetError } from '../errors.ts';
import { type HistoryEntry, type HistoryState, RETRY_OF_HEADER } from '../history/entry.ts';
import type { HistoryQuery } from '../history/store.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import { assertQueueName } from '../queue-name.ts';
import type {
  LatencyView,
  Overview,
  QueueView,
  RetryResponse,
  TaskFilter,
  TaskPage,
  TaskQueueView,
  TaskView,
  WorkerView,
} from './contract.ts';

/** An API error: its HTTP status, a code, and a message that says what to do. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The most ids one bulk action takes, and the most calls one "retry all matching" retries. */
export const MAX_BULK = 1000;
/** How many of the newest entries the latency percentiles are taken over. */
const LATENCY_SAMPLE = 500;
/** How far back a workflow's members are looked for, beyond its first call's creation. */
const WORKFLOW_SCAN = 5000;

export interface TaskQueueSource {
  list(): Promise<TaskQueueView[]>;
}

export interface ConsoleApiOptions {
  /** Queues shown even before a worker of theirs is seen. */
  queues?: readonly string[];
  kubernetes?: TaskQueueSource;
}

export class ConsoleApi {
  readonly #app: Taskfleet;
  readonly #queues: readonly string[];
  readonly #kubernetes: TaskQueueSource | undefined;

  constructor(app: Taskfleet, { queues = [], kubernetes }: ConsoleApiOptions = {}) {
    for (const queue of queues) assertQueueName(queue);
    this.#app = app;
    this.#queues = queues;
    this.#kubernetes = kubernetes;
  }

  get broker(): string {
    return redact(this.#app.brokerUrl);
  }

  get keepsHistory(): boolean {
    return this.#app.broker.history !== undefined;
  }

  /** The queues given, the app's default, and every queue a live worker consumes, sorted. */
  async queues(workers?: readonly { queue: string }[]): Promise<string[]> {
    const seen = new Set([...this.#queues, this.#app.defaultQueue]);
    for (const w of workers ?? (await this.#workers())) seen.add(w.queue);
    return [...seen].sort();
  }

  /** Live workers' heartbeats; none without a result backend (workers then write none: docs/worker.md). */
  async #workers() {
    return this.#app.hasBackend ? this.#app.control.workers() : [];
  }

  async overview(): Promise<Overview> {
    const [beats, taskQueues] = await Promise.all([
      this.#workers(),
      this.#kubernetes?.list().then(
        (list) => ({ taskQueues: list }),
        (error: Error) => ({ taskQueues: [], error: redactText(error.message) }),
      ),
    ]);
    const history = this.#app.broker.history;
    const queues = await Promise.all(
      (await this.queues(beats)).map(async (name): Promise<QueueView> => {
        const [backlog, historySize] = await Promise.all([this.#app.broker.backlog(name), history?.size(name)]);
        const view: QueueView = {
          name,
          ready: backlog.ready,
          delayed: backlog.delayed,
          inFlight: backlog.inFlight,
          ...(backlog.deadLetters !== undefined ? { deadLetters: backlog.deadLetters } : {}),
          ...(backlog.added !== undefined ? { added: backlog.added } : {}),
          ...(backlog.delivered !== undefined ? { delivered: backlog.delivered } : {}),
          ...(historySize !== undefined ? { historySize } : {}),
        };
        if (backlog.oldestReadyAt !== undefined) {
          view.oldestAgeSeconds = Math.max(0, (Date.now() - backlog.oldestReadyAt) / 1000);
        } else if (backlog.ready === 0) view.oldestAgeSeconds = 0;
        return view;
      }),
    );
    const workers = beats
      .map(
        (w): WorkerView => ({
          id: w.id,
          hostname: w.hostname,
          queue: w.queue,
          concurrency: w.concurrency,
          running: w.active.length,
          reserved: w.reserved,
          processed: w.processed,
          startedAt: w.startedAt,
          lastHeartbeat: w.at,
          version: w.version,
          active: w.active,
        }),
      )
      .sort((a, b) => a.id.localeCompare(b.id));
    return { at: Date.now(), workers, queues, ...(taskQueues ? { kubernetes: taskQueues } : {}) };
  }

  async tasks(queue: string, query: HistoryQuery): Promise<TaskPage> {
    return this.#history().list(checkedQueue(queue), query);
  }

  /** A call by id: from `queue`'s history when given, else from the first queue whose history has it. */
  async task(id: string, queue?: string): Promise<TaskView> {
    checkedId(id);
    const history = this.#app.broker.history;
    let entry: HistoryEntry | undefined;
    if (history) {
      for (const q of queue !== undefined ? [checkedQueue(queue)] : await this.queues()) {
        entry = await history.entry(q, id);
        if (entry) break;
      }
    }
    const result = this.#app.hasBackend ? await this.#app.backend.get(id) : undefined;
    if (!entry && !result) throw new ApiError(404, 'NOT_FOUND', `no call ${id} in the history or the result backend`);
    const rootId = entry?.rootId ?? result?.rootId ?? id;
    const workflow = history && entry ? await this.#workflow(entry.queue, rootId, entry) : entry ? [entry] : [];
    return { id, ...(entry ? { entry } : {}), ...(result ? { result } : {}), workflow };
  }

  /** The calls of a workflow (same rootId) in the history, the latest attempt of each. */
  async #workflow(queue: string, root: string, self: HistoryEntry): Promise<HistoryEntry[]> {
    const history = this.#history();
    const since = self.createdAt !== undefined && self.id === root ? self.createdAt : undefined;
    const members = new Map<string, HistoryEntry>();
    for (const q of new Set([queue, ...(await this.queues())])) {
      const page = await history.list(q, {
        root,
        limit: 1000,
        scanLimit: WORKFLOW_SCAN,
        ...(since !== undefined ? { since } : {}),
      });
      for (const e of page.entries) if (!members.has(e.id)) members.set(e.id, e);
    }
    if (!members.has(self.id)) members.set(self.id, self);
    return [...members.values()];
  }

  /** Over the newest entries, or (`since`, epoch ms) the newest of those written since then. */
  async latency(queue: string, { since }: { since?: number } = {}): Promise<LatencyView> {
    const page = await this.#history().list(checkedQueue(queue), {
      limit: LATENCY_SAMPLE,
      ...(since !== undefined ? { since: Math.max(0, Math.floor(since)) } : {}),
    });
    const durations: number[] = [];
    const waits: number[] = [];
    for (const e of page.entries) {
      if (e.startedAt === undefined) continue;
      durations.push(e.finishedAt - e.startedAt);
      if (e.createdAt !== undefined && e.attempt === 1) waits.push(Math.max(0, e.startedAt - e.createdAt));
    }
    return { sampled: page.entries.length, duration: percentiles(durations), wait: percentiles(waits) };
  }

  async deadLetters(queue: string, limit: number): Promise<DeadLetter[]> {
    return this.#app.broker.deadLetters(checkedQueue(queue), { limit });
  }

  async revoke(ids: readonly string[], terminate: boolean): Promise<number> {
    checkedIds(ids);
    await this.#app.control.revoke(ids, { terminate });
    return ids.length;
  }

  /**
   * New calls with the arguments of failed or revoked ones (their latest attempt in the history),
   * each carrying the id it retries (header taskfleet-retry-of: the history shows it as `retryOf`).
   */
  async retry(queue: string, request: { ids?: readonly string[]; filter?: TaskFilter }): Promise<RetryResponse> {
    const q = checkedQueue(queue);
    const history = this.#history();
    const candidates: (HistoryEntry | { id: string; missing: true })[] = [];
    if (request.ids) {
      checkedIds(request.ids);
      for (const id of request.ids) candidates.push((await history.entry(q, id)) ?? { id, missing: true });
    } else if (request.filter) {
      const { state, ...filter } = request.filter;
      const states: HistoryState[] = state ? [state] : ['FAILURE', 'REVOKED'];
      for (const s of states) {
        let cursor: string | undefined;
        do {
          const page = await history.list(q, { ...filter, state: s, limit: 1000, ...(cursor ? { cursor } : {}) });
          candidates.push(...page.entries);
          cursor = page.next;
        } while (cursor !== undefined && candidates.length < MAX_BULK);
      }
    } else throw new ApiError(400, 'BAD_REQUEST', 'retry needs `ids` or a `filter`');
    const seen = new Set<string>();
    const envelopes: Envelope[] = [];
    const retried: RetryResponse['retried'] = [];
    const skipped: RetryResponse['skipped'] = [];
    for (const c of candidates.slice(0, MAX_BULK)) {
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      if ('missing' in c) skipped.push({ id: c.id, why: `not in the history of ${q}` });
      else if (c.state !== 'FAILURE' && c.state !== 'REVOKED')
        skipped.push({
          id: c.id,
          why: `its last attempt ended ${c.state}: only FAILURE and REVOKED calls are retried`,
        });
      else if (c.args === undefined)
        skipped.push({ id: c.id, why: 'its arguments were left out of the history (the message was too large)' });
      else {
        const envelope = createEnvelope({
          task: c.task,
          args: c.args,
          queue: q,
          ...(c.priority !== undefined ? { priority: c.priority } : {}),
          headers: { [RETRY_OF_HEADER]: c.id },
        });
        envelope.kwargs = c.kwargs ?? {};
        envelopes.push(envelope);
        retried.push({ from: c.id, id: envelope.id });
      }
    }
    if (envelopes.length > 0) await this.#app.broker.publish(envelopes);
    return { retried, skipped };
  }

  async requeueDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    if (ids) checkedLetterIds(this.#app.brokerDefinition.name, ids);
    return this.#app.broker.requeueDeadLetters(checkedQueue(queue), ids);
  }

  async deleteDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    const broker = this.#app.broker;
    if (!broker.deleteDeadLetters) {
      throw new ApiError(
        501,
        'NOT_SUPPORTED',
        `the ${this.#app.brokerDefinition.name} broker cannot delete dead letters`,
      );
    }
    if (ids) checkedLetterIds(this.#app.brokerDefinition.name, ids);
    return broker.deleteDeadLetters(checkedQueue(queue), ids);
  }

  async purge(queue: string, confirm: unknown): Promise<number> {
    const q = checkedQueue(queue);
    if (confirm !== q) {
      throw new ApiError(400, 'CONFIRM', `to purge, send {"confirm": ${JSON.stringify(q)}}: the queue's name`);
    }
    return this.#app.broker.purge(q);
  }

  #history() {
    const history = this.#app.broker.history;
    if (!history) {
      throw new ApiError(
        409,
        'NO_HISTORY',
        'no task history here: it is kept on a Redis broker when workers run with TASKFLEET_HISTORY=on (docs/history.md)',
      );
    }
    return history;
  }
}

export function checkedQueue(queue: string): string {
  try {
    assertQueueName(queue);
  } catch (error) {
    throw new ApiError(400, 'BAD_QUEUE', (error as Error).message);
  }
  return queue;
}

const ID = /^[\w.:-]{1,200}$/;

function checkedId(id: string): void {
  if (!ID.test(id)) throw new ApiError(400, 'BAD_ID', 'a task id is 1 to 200 letters, digits, and . _ : -');
}

function checkedIds(ids: readonly string[]): void {
  if (ids.length === 0) throw new ApiError(400, 'BAD_REQUEST', '`ids` is empty');
  if (ids.length > MAX_BULK) throw new ApiError(400, 'TOO_MANY', `at most ${MAX_BULK} ids at once`);
  for (const id of ids) checkedId(id);
}

function checkedLetterIds(broker: string, ids: readonly string[]): void {
  if (ids.length === 0) throw new ApiError(400, 'BAD_REQUEST', '`ids` is empty: leave it out to act on all');
  if (ids.length > MAX_BULK) throw new ApiError(400, 'TOO_MANY', `at most ${MAX_BULK} ids at once`);
  const shape = broker.toLowerCase() === 'redis' ? /^\d{1,20}-\d{1,20}$/ : ID;
  const bad = ids.find((id) => typeof id !== 'string' || !shape.test(id));
  if (bad !== undefined) throw new ApiError(400, 'BAD_ID', `${JSON.stringify(bad)} is not a dead letter's id`);
}

function percentiles(values: number[]): { p50: number; p90: number; p99: number } | null {
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  const at = (p: number) => values[Math.min(values.length - 1, Math.ceil(p * values.length) - 1)] as number;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** TaskfleetErrors (a bad query, say) are the caller's to fix: 400 with their message. */
export function apiErrorFrom(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof TaskfleetError) return new ApiError(400, error.code, redactText(error.message));
  return new ApiError(500, 'INTERNAL', 'the console failed to answer: see its log');
}
