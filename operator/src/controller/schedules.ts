import { ConfigError } from 'taskfleet';
import { type Broker, parseSchedule, Scheduler } from 'taskfleet/operator';
import type { TaskQueue, TaskQueueStatus } from '../api/types.ts';
import { definitionOf, probeOf } from '../brokers/registry.ts';
import type { BrokerTarget, ProbePool } from '../probes/probe.ts';
import type { RecordEvent } from './events.ts';
import type { LogLine } from './scrub.ts';

/** A queue's Scheduler, kept between polls: rebuilt for a new generation, broker target or connection. */
export interface ScheduleState {
  /** The schedules of the generation they were built from. */
  scheduler?: { generation: number | undefined; target: string; broker: Broker; scheduler: Scheduler };
}

/** What firing schedules takes. */
export interface ScheduleContext {
  /** The connections the probes use: schedules fire through the same one. */
  probes: Pick<ProbePool, 'connection'>;
  /** The scheduler's clock. */
  clock: () => number;
  event: RecordEvent;
  say: LogLine;
}

export interface FiredSchedules {
  /** For `status.schedules`. */
  status: NonNullable<TaskQueueStatus['schedules']>;
  /** When the next tick of any schedule falls (epoch ms), to requeue for it; undefined if never. */
  nextDueAt: number | undefined;
}

/**
 * Fires the TaskQueue's schedule ticks due at `now` through the same scheduler and idempotent fire
 * script as `taskfleet beat`: each (schedule, tick) is enqueued once, even if a new leader repeats a tick
 * the old one fired just before it died. Only the leader reconciles, so the Lease is the lease here.
 * Nothing to fire (undefined) without schedules or on a broker that has no schedule store (the broker
 * `target` probed; none when it could not be resolved).
 */
export async function fireSchedules(
  ctx: ScheduleContext,
  tq: TaskQueue,
  state: ScheduleState,
  target: BrokerTarget | undefined,
  now: number,
): Promise<FiredSchedules | undefined> {
  if (!target || !tq.spec.schedules?.length) return undefined;
  const { scheduleStore } = definitionOf(target.kind);
  if (!scheduleStore) return undefined;
  const generation = tq.metadata.generation;
  const where = `${probeOf(target).connectionKey(target)}\u0000${target.queue}`;
  // The pool closes a connection left unused for a while: a scheduler built on a closed one is rebuilt.
  const { broker } = ctx.probes.connection(target);
  if (
    !state.scheduler ||
    state.scheduler.generation !== generation ||
    state.scheduler.target !== where ||
    state.scheduler.broker !== broker
  ) {
    const parsed = [];
    for (const s of tq.spec.schedules ?? []) {
      const common = { task: s.task, args: s.args ?? [], missed: s.missed ?? ('fire-once' as const) };
      try {
        parsed.push(
          parseSchedule(
            s.name,
            s.cron !== undefined
              ? { ...common, cron: s.cron, timeZone: s.timeZone ?? 'UTC' }
              : { ...common, every: (s.everySeconds ?? 0) * 1000 },
            { where: `spec.schedules[${s.name}]` },
          ),
        );
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        await ctx.event('Warning', 'InvalidSchedule', error.message);
      }
    }
    state.scheduler = {
      generation,
      target: where,
      broker,
      scheduler: new Scheduler({
        schedules: parsed,
        store: scheduleStore(broker, target.prefix),
        queueOf: () => target.queue,
        clock: ctx.clock,
      }),
    };
  }
  const { scheduler } = state.scheduler;
  const report = await scheduler.tick(now);
  for (const fire of report.fired) ctx.say('schedule fired', { schedule: fire.schedule, taskId: fire.taskId });
  const status = (await scheduler.status()).map((s) => ({
    name: s.name,
    ...(s.lastFire ? { lastFire: new Date(s.lastFire.tick).toISOString(), lastTaskId: s.lastFire.taskId } : {}),
    ...(s.nextFire !== undefined ? { nextFire: new Date(s.nextFire).toISOString() } : {}),
    fires: s.fires,
    missed: s.missed,
  }));
  return { status, nextDueAt: report.nextDueAt };
}
