/**
 * The console's graphs: a sampler that reads the overview every tick, whether or not a page is open,
 * turns its counters into rates (arrivals from the broker's `added` counter, completions by outcome from
 * the workers' `processed` counters), takes the duration and wait percentiles of the calls that finished
 * in the tick, and keeps the points in a ring of bounded size. The ring lives in memory since the console
 * started: it is the one thing a restart loses, and the broker keeps everything else.
 */
import type { Logger } from '../observe/logger.ts';
import type { ConsoleApi } from './api.ts';
import type { LatencyView, Overview, QueuePoint, SeriesPoint, SeriesView } from './contract.ts';

/** Points kept: an hour at the default refresh of 2 s. */
export const SERIES_CAPACITY = 1800;
/** Queues a point keeps (the first, sorted by name); the overview still shows them all. */
export const SERIES_QUEUES = 20;

/** What the previous tick saw, to turn counters into rates. */
export interface SampleMemory {
  at: number;
  /** Each worker's last heartbeat time and outcome counters. */
  workers: Map<string, { at: number; processed: Record<string, number> }>;
  /** Each queue's `added` counter. */
  added: Map<string, number>;
}

/**
 * A point from an overview and the previous tick's memory (pure: the unit tests drive it). Rates are per
 * second over the time since the previous tick. A worker's counts enter once its heartbeat moves on; a
 * worker seen for the first time contributes nothing (its counts are since its start, not this tick), and
 * a counter that went down (the worker restarted under the same id) counts from zero.
 */
export function samplePoint(
  overview: Overview,
  latency: ReadonlyMap<string, LatencyView>,
  before: SampleMemory | undefined,
): { point: SeriesPoint; memory: SampleMemory } {
  const memory: SampleMemory = { at: overview.at, workers: new Map(), added: new Map() };
  const seconds = before ? Math.max(0.001, (overview.at - before.at) / 1000) : 0;
  const outcomes = new Map<string, Record<string, number>>();
  for (const w of overview.workers) {
    memory.workers.set(w.id, { at: w.lastHeartbeat, processed: w.processed });
    const seen = before?.workers.get(w.id);
    if (!seen || seconds === 0) continue;
    const perQueue = outcomes.get(w.queue) ?? {};
    for (const [outcome, count] of Object.entries(w.processed)) {
      const was = seen.processed[outcome] ?? 0;
      const delta = count >= was ? count - was : count;
      if (delta > 0) perQueue[outcome] = (perQueue[outcome] ?? 0) + delta;
    }
    outcomes.set(w.queue, perQueue);
  }
  const replicas = new Map<string, { desired: number; ready: number }>();
  for (const tq of overview.kubernetes?.taskQueues ?? []) {
    const sum = replicas.get(tq.queue) ?? { desired: 0, ready: 0 };
    sum.desired += tq.desiredReplicas ?? tq.replicas ?? 0;
    sum.ready += tq.readyReplicas ?? 0;
    replicas.set(tq.queue, sum);
  }
  const queues: Record<string, QueuePoint> = {};
  for (const q of overview.queues.slice(0, SERIES_QUEUES)) {
    if (q.added !== undefined) memory.added.set(q.name, q.added);
    const perSecond: Record<string, number> = {};
    let completions = 0;
    for (const [outcome, delta] of Object.entries(outcomes.get(q.name) ?? {})) {
      perSecond[outcome] = round(delta / seconds);
      completions += delta;
    }
    const point: QueuePoint = {
      ready: q.ready,
      delayed: q.delayed,
      inFlight: q.inFlight,
      outcomesPerSecond: perSecond,
    };
    if (seconds > 0) point.completionsPerSecond = round(completions / seconds);
    const addedBefore = before?.added.get(q.name);
    if (q.added !== undefined && addedBefore !== undefined && seconds > 0) {
      point.arrivalsPerSecond = round(Math.max(0, q.added - addedBefore) / seconds);
    }
    if (q.deadLetters !== undefined) point.deadLetters = q.deadLetters;
    if (q.oldestAgeSeconds !== undefined) point.oldestAgeSeconds = round(q.oldestAgeSeconds);
    const l = latency.get(q.name);
    if (l?.duration) point.duration = l.duration;
    if (l?.wait) point.wait = l.wait;
    const r = replicas.get(q.name);
    if (r) {
      point.desiredReplicas = r.desired;
      point.readyReplicas = r.ready;
    }
    queues[q.name] = point;
  }
  return { point: { at: overview.at, queues }, memory };
}

/** Copies the latest point's rates onto an overview's queues (the overview itself reads no rates). */
export function withRates(overview: Overview, point: SeriesPoint | undefined): Overview {
  if (!point) return overview;
  for (const q of overview.queues) {
    const p = point.queues[q.name];
    if (p?.arrivalsPerSecond !== undefined) q.arrivalsPerSecond = p.arrivalsPerSecond;
    if (p?.completionsPerSecond !== undefined) q.completionsPerSecond = p.completionsPerSecond;
  }
  return overview;
}

/** A ring of at most `capacity` items, oldest first. */
export class Ring<T> {
  readonly capacity: number;
  readonly #items: T[] = [];
  #start = 0;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  push(item: T): void {
    if (this.#items.length < this.capacity) this.#items.push(item);
    else {
      this.#items[this.#start] = item;
      this.#start = (this.#start + 1) % this.capacity;
    }
  }

  get size(): number {
    return this.#items.length;
  }

  last(): T | undefined {
    if (this.#items.length === 0) return undefined;
    return this.#items[(this.#start + this.#items.length - 1) % this.#items.length];
  }

  toArray(): T[] {
    return [...this.#items.slice(this.#start), ...this.#items.slice(0, this.#start)];
  }
}

export type SampleListener = (sample: { overview: Overview; point: SeriesPoint } | { problem: string }) => void;

/** Reads the overview every `intervalMs` from start() to stop(), and keeps the points. */
export class Sampler {
  readonly intervalMs: number;
  readonly #api: ConsoleApi;
  readonly #logger: Logger;
  readonly #points: Ring<SeriesPoint>;
  readonly #listeners = new Set<SampleListener>();
  #memory: SampleMemory | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #failing = false;
  #overview: Overview | undefined;

  constructor(api: ConsoleApi, intervalMs: number, logger: Logger, capacity = SERIES_CAPACITY) {
    this.#api = api;
    this.intervalMs = intervalMs;
    this.#logger = logger;
    this.#points = new Ring(capacity);
  }

  /** The last overview read (with its rates), if one was. */
  get overview(): Overview | undefined {
    return this.#overview;
  }

  get latest(): SeriesPoint | undefined {
    return this.#points.last();
  }

  listen(listener: SampleListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#tick();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One queue's points, oldest first. */
  series(queue: string): SeriesView {
    const points = this.#points.toArray().flatMap((p) => (p.queues[queue] ? [{ at: p.at, ...p.queues[queue] }] : []));
    return { queue, intervalMs: this.intervalMs, capacity: this.#points.capacity, points };
  }

  async #tick(): Promise<void> {
    try {
      const overview = await this.#api.overview();
      const since = this.#memory?.at ?? overview.at - this.intervalMs;
      const latency = new Map<string, LatencyView>();
      if (this.#api.keepsHistory) {
        for (const q of overview.queues.slice(0, SERIES_QUEUES)) {
          latency.set(q.name, await this.#api.latency(q.name, { since }));
        }
      }
      const { point, memory } = samplePoint(overview, latency, this.#memory);
      this.#memory = memory;
      this.#points.push(point);
      this.#overview = withRates(overview, point);
      if (this.#failing) this.#logger.info('console: the broker answers again');
      this.#failing = false;
      this.#emit({ overview: this.#overview, point });
    } catch (error) {
      if (!this.#failing) this.#logger.warn('console: the overview could not be read (retrying)', { error });
      this.#failing = true;
      this.#emit({ problem: 'the broker did not answer: retrying' });
    }
    if (this.#running) this.#timer = setTimeout(() => void this.#tick(), this.intervalMs);
  }

  #emit(sample: Parameters<SampleListener>[0]): void {
    for (const listener of this.#listeners) listener(sample);
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
