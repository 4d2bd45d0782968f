import type { Redis, Scripts } from '../brokers/redis/connection.ts';
import { queueKeys, scheduleKeys } from '../brokers/redis/keys.ts';
import { TaskfleetError } from '../errors.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, type Envelope, encodeEnvelope, priorityLane } from '../message/envelope.ts';

/** Where a schedule fires: its name and the queue its calls go to (its state lives beside that queue). */
export interface ScheduleTarget {
  name: string;
  queue: string;
}

/** What has been done for a schedule, as recorded. */
export interface ScheduleState {
  /** Every tick at or before this is settled: fired, or passed over for good (epoch ms). */
  watermark: number;
  /** The last fire: its tick, task id and when it was made (by the firing host's clock). */
  lastFire?: { tick: number; taskId: string; at: number };
  /** The next tick, as last recorded. */
  nextTick?: number;
  /** Fires ever made, and ticks missed and not fired on their own. */
  fires: number;
  missed: number;
}

/** The holder of a lease firing: fires under an older holding than one already seen are refused. */
export interface Fence {
  /** The lease (fencing domain): tokens of different leases are not compared. */
  lease: string;
  token: number;
}

export interface FireRequest {
  target: ScheduleTarget;
  tick: number;
  envelope: Envelope;
  /** How long the tick's fired mark is kept (ms). */
  keepMs: number;
  /** Undefined when the host holds no lease: idempotency alone then keeps fires single. */
  fence: Fence | undefined;
  /** The time of the fire, by the host's clock. */
  now: number;
  /** The schedule's next tick, for status. */
  nextTick: number | undefined;
}

export interface AdvanceRequest {
  target: ScheduleTarget;
  watermark: number;
  nextTick: number | undefined;
  missed: number;
  fence: Fence | undefined;
}

/** How a fire went: made; not made because the tick was settled already; refused to a stale holder. */
export type FireOutcome = 'fired' | 'duplicate' | 'fenced';

/**
 * Where schedules keep their state and fire: the one thing a host of the Scheduler must provide.
 * `fire` must be atomic and idempotent per (schedule, tick): it is what makes a tick fire once
 * however many hosts try it.
 */
export interface ScheduleStore {
  /** The state of each schedule; one never seen before starts at `now` (its earlier ticks are not due). */
  load(targets: readonly ScheduleTarget[], now: number): Promise<Map<string, ScheduleState>>;
  fire(request: FireRequest): Promise<FireOutcome>;
  /** Moves the watermark forward past ticks not fired, and records the next tick. */
  advance(request: AdvanceRequest): Promise<'advanced' | 'fenced'>;
}

/**
 * The ScheduleStore on the broker's Redis: each schedule's state is a hash beside its queue's streams
 * (same hash tag), so `fire-schedule.lua` checks the tick, enqueues the call and records the fire in
 * one atomic step. Any host can use it: the beat, the operator, a test.
 */
export class RedisScheduleStore implements ScheduleStore {
  readonly #redis: Redis & Scripts;
  readonly #prefix: string;
  readonly #maxMessageBytes: number;

  constructor(redis: Redis & Scripts, { prefix = 'tf', maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES } = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#maxMessageBytes = maxMessageBytes;
  }

  async load(targets: readonly ScheduleTarget[], now: number): Promise<Map<string, ScheduleState>> {
    const pipeline = this.#redis.pipeline();
    for (const target of targets) {
      const { state } = scheduleKeys(this.#prefix, target.queue, target.name);
      pipeline.hsetnx(state, 'watermark', now);
      pipeline.hgetall(state);
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error !== null);
    if (failed?.[0]) throw failed[0];
    const states = new Map<string, ScheduleState>();
    targets.forEach((target, i) => {
      const fields = (results[2 * i + 1]?.[1] ?? {}) as Record<string, string>;
      states.set(target.name, stateFrom(fields));
    });
    return states;
  }

  async fire(request: FireRequest): Promise<FireOutcome> {
    const { target, tick, envelope, fence } = request;
    if (envelope.queue !== target.queue) {
      throw new TaskfleetError(
        'SCHEDULE_QUEUE',
        `schedule ${target.name} fires onto ${target.queue}, but its message names queue ${envelope.queue}`,
      );
    }
    const keys = scheduleKeys(this.#prefix, target.queue, target.name);
    const queue = queueKeys(this.#prefix, target.queue);
    const lane = priorityLane(envelope.priority);
    const code = Number(
      await this.#redis.fireSchedule(
        keys.fired(envelope.id),
        keys.state,
        keys.fence(fence?.lease ?? 'none'),
        queue.delayed,
        queue.lanes[lane],
        tick,
        request.keepMs,
        fence?.token ?? -1,
        encodeEnvelope(envelope, this.#maxMessageBytes),
        envelope.id,
        envelope.eta ?? 0,
        lane,
        request.now,
        request.nextTick ?? '',
      ),
    );
    return outcome(code, { 1: 'fired', 0: 'duplicate' } as const);
  }

  async advance(request: AdvanceRequest): Promise<'advanced' | 'fenced'> {
    const keys = scheduleKeys(this.#prefix, request.target.queue, request.target.name);
    const code = Number(
      await this.#redis.advanceSchedule(
        keys.state,
        keys.fence(request.fence?.lease ?? 'none'),
        request.watermark,
        request.nextTick ?? '',
        request.missed,
        request.fence?.token ?? -1,
      ),
    );
    return outcome(code, { 1: 'advanced' } as const);
  }
}

/** The scripts' return codes, in one place: -1 is always "fenced off". */
function outcome<T extends string>(code: number, known: Record<number, T>): T | 'fenced' {
  if (code === -1) return 'fenced';
  const value = known[code];
  if (value === undefined) throw new TaskfleetError('SCHEDULE_SCRIPT', `unexpected script result ${code}`);
  return value;
}

function stateFrom(f: Record<string, string>): ScheduleState {
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const lastTick = num(f.lastTick);
  const nextTick = num(f.nextTick);
  return {
    watermark: num(f.watermark) ?? 0,
    ...(lastTick !== undefined
      ? { lastFire: { tick: lastTick, taskId: f.lastTaskId ?? '', at: num(f.lastFiredAt) ?? lastTick } }
      : {}),
    ...(nextTick !== undefined ? { nextTick } : {}),
    fires: num(f.fires) ?? 0,
    missed: num(f.missed) ?? 0,
  };
}
