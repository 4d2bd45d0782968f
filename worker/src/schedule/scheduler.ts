import { TaskfleetError } from '../errors.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import { type Logger, silentLogger } from '../observe/logger.ts';
import { dueTicks } from './due.ts';
import type { FencingLease } from './lease.ts';
import { type Schedule, scheduledTaskId } from './schedule.ts';
import type { Fence, ScheduleState, ScheduleStore, ScheduleTarget } from './store.ts';

/** One fire to make: what `envelope` and `beforeFire` receive. */
export interface Fire {
  schedule: Schedule;
  queue: string;
  tick: number;
  /** Deterministic: the same for this (schedule, tick) on every host. */
  taskId: string;
}

export interface SchedulerOptions {
  schedules: readonly Schedule[];
  store: ScheduleStore;
  /**
   * The queue a schedule's calls go to (its state is kept beside it).
   * @defaultValue the schedule's `options.queue`, else 'default'
   */
  queueOf?: (schedule: Schedule) => string;
  /**
   * Builds the message of a fire; it must carry `fire.taskId` as its id and go to `fire.queue`. The beat
   * passes the app's `envelopeFor`, so task defaults apply. @defaultValue `scheduledEnvelope`
   */
  envelope?: (fire: Fire) => Envelope;
  /** Without a lease every tick() fires what is due (idempotency still keeps each tick to one fire). */
  lease?: FencingLease;
  /** Epoch ms; tick() reads it when called without a time. @defaultValue Date.now */
  clock?: () => number;
  logger?: Logger;
  /** Ticks fired per schedule per tick() at most; the rest follow at once (`nextDueAt` is now). @defaultValue 1000 */
  maxFiresPerTick?: number;
  /**
   * Called before each fire, after the lease was checked: where a test holds a host still to open a
   * failover window, or a host observes fires.
   */
  beforeFire?: (fire: Fire) => Promise<void> | void;
}

export interface TickReport {
  /** Whether this host held the lease (or had none to hold) and looked at the schedules. */
  leading: boolean;
  fired: Fire[];
  /** Fires refused because another host had fired the tick already. */
  duplicates: Fire[];
  /** Schedules whose missed ticks were skipped or folded into one fire, with how many. */
  missed: { schedule: string; count: number }[];
  /** Schedules that could not fire (their message could not be built), with why. */
  failed: { schedule: string; error: Error }[];
  /** When the next tick of any schedule falls (epoch ms), for the host's next call; undefined if never. */
  nextDueAt: number | undefined;
}

/** A schedule's status: for `status.schedules` of a TaskQueue, or a CLI. */
export interface ScheduleStatus {
  name: string;
  queue: string;
  timing: string;
  lastFire?: { tick: number; taskId: string; at: number };
  nextFire?: number;
  fires: number;
  missed: number;
}

/** How long a tick's fired mark outlives its `missedAfter` window. */
const FIRED_MARK_MARGIN_MS = 10 * 60_000;

/**
 * Fires periodic tasks: each tick() looks at every schedule and fires the ticks due since the last
 * recorded one, through a store whose fire is idempotent per (schedule, tick). The host calls tick()
 * whenever it likes (at `nextDueAt`, on a timer, from a reconcile loop): a call too early does nothing,
 * a call late catches up, and several hosts calling at once still fire each tick once. A lease, when
 * given, keeps all but one host idle; its fencing token keeps a host that lost it from firing on.
 *
 * Hosts: `Beat` (the `taskfleet beat` command) and the operator, which fires TaskQueue schedules from
 * its leader with its own lease. Only the store knows Redis.
 */
export class Scheduler {
  readonly #schedules: readonly Schedule[];
  readonly #targets: ScheduleTarget[];
  readonly #store: ScheduleStore;
  readonly #envelope: (fire: Fire) => Envelope;
  readonly #lease: FencingLease | undefined;
  readonly #clock: () => number;
  readonly #logger: Logger;
  readonly #limit: number;
  readonly #beforeFire: SchedulerOptions['beforeFire'];

  constructor(options: SchedulerOptions) {
    this.#schedules = [...options.schedules];
    const queueOf = options.queueOf ?? ((s: Schedule) => s.options.queue ?? 'default');
    this.#targets = this.#schedules.map((s) => ({ name: s.name, queue: queueOf(s) }));
    this.#store = options.store;
    this.#envelope = options.envelope ?? scheduledEnvelope;
    this.#lease = options.lease;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger ?? silentLogger;
    this.#limit = options.maxFiresPerTick ?? 1000;
    this.#beforeFire = options.beforeFire;
  }

  get schedules(): readonly Schedule[] {
    return this.#schedules;
  }

  /** Fires what is due at `now`. Throws when the store cannot be reached; calling again resumes. */
  async tick(now: number = this.#clock()): Promise<TickReport> {
    const report: TickReport = {
      leading: false,
      fired: [],
      duplicates: [],
      missed: [],
      failed: [],
      nextDueAt: undefined,
    };
    const token = this.#lease?.current();
    if (this.#lease && token === undefined) return report;
    const fence: Fence | undefined =
      this.#lease && token !== undefined ? { lease: this.#lease.name, token } : undefined;
    report.leading = true;
    const states = await this.#store.load(this.#targets, now);
    const dueAt: number[] = [];
    for (const [i, schedule] of this.#schedules.entries()) {
      const target = this.#targets[i] as ScheduleTarget;
      const state = states.get(schedule.name) as ScheduleState;
      const due = dueTicks(schedule, state.watermark, now, this.#limit);
      if (due.missed > 0) {
        report.missed.push({ schedule: schedule.name, count: due.missed });
        this.#logger.warn('missed ticks', {
          schedule: schedule.name,
          missed: due.missed,
          policy: schedule.missed,
          missedAfterMs: schedule.missedAfter,
        });
      }
      let failed = false;
      for (const tick of due.fire) {
        // The lease may lapse during a long catch-up: stop, rather than fire as a former holder.
        if (this.#lease && this.#lease.current() !== token) {
          report.leading = false;
          return report;
        }
        const fire: Fire = { schedule, queue: target.queue, tick, taskId: scheduledTaskId(schedule.name, tick) };
        let envelope: Envelope;
        try {
          envelope = this.#envelope(fire);
          if (envelope.id !== fire.taskId || envelope.queue !== fire.queue) {
            throw new TaskfleetError(
              'SCHEDULE_ENVELOPE',
              `the message of ${fire.taskId} must have id ${fire.taskId} and queue ${fire.queue}, not ${envelope.id} and ${envelope.queue}`,
            );
          }
        } catch (error) {
          // The same error would recur at every tick: say it, leave the tick unsettled, go on with the others.
          report.failed.push({ schedule: schedule.name, error: error as Error });
          this.#logger.error('cannot fire schedule', { schedule: schedule.name, error });
          failed = true;
          break;
        }
        await this.#beforeFire?.(fire);
        const outcome = await this.#store.fire({
          target,
          tick,
          envelope,
          keepMs: schedule.missedAfter + FIRED_MARK_MARGIN_MS,
          fence,
          now: this.#clock(),
          nextTick: schedule.timing.next(Math.max(tick, now)),
        });
        if (outcome === 'fenced') return this.#fenced(report, schedule.name);
        if (outcome === 'fired') {
          report.fired.push(fire);
          this.#logger.info('fired', {
            schedule: schedule.name,
            tick: new Date(tick).toISOString(),
            taskId: fire.taskId,
            task: envelope.task,
            queue: target.queue,
          });
        } else {
          report.duplicates.push(fire);
          this.#logger.info('tick already fired', { schedule: schedule.name, tick: new Date(tick).toISOString() });
        }
      }
      if (failed) continue;
      const settled = Math.max(state.watermark, due.fire.at(-1) ?? state.watermark);
      if (due.watermark > settled || due.missed > 0 || (due.fire.length === 0 && due.next !== state.nextTick)) {
        const advanced = await this.#store.advance({
          target,
          watermark: due.watermark,
          nextTick: due.next,
          missed: due.missed,
          fence,
        });
        if (advanced === 'fenced') return this.#fenced(report, schedule.name);
      }
      if (due.more) dueAt.push(now);
      else if (due.next !== undefined) dueAt.push(due.next);
    }
    report.nextDueAt = dueAt.length > 0 ? Math.min(...dueAt) : undefined;
    return report;
  }

  #fenced(report: TickReport, schedule: string): TickReport {
    this.#logger.warn('a newer lease holder has fired: stepping down', { schedule, lease: this.#lease?.name });
    this.#lease?.lost?.();
    report.leading = false;
    report.nextDueAt = undefined;
    return report;
  }

  /** Each schedule's last and next fire, as recorded. */
  async status(now: number = this.#clock()): Promise<ScheduleStatus[]> {
    const states = await this.#store.load(this.#targets, now);
    return this.#schedules.map((schedule, i) => {
      const state = states.get(schedule.name) as ScheduleState;
      const nextFire = state.nextTick ?? schedule.timing.next(Math.max(state.watermark, now));
      return {
        name: schedule.name,
        queue: (this.#targets[i] as ScheduleTarget).queue,
        timing: schedule.timing.description,
        ...(state.lastFire ? { lastFire: state.lastFire } : {}),
        ...(nextFire !== undefined ? { nextFire } : {}),
        fires: state.fires,
        missed: state.missed,
      };
    });
  }
}

/**
 * The message of a fire for a host without the app's task registry (the operator): the task by name,
 * the schedule's arguments and options, the deterministic id, and headers naming the schedule and tick.
 */
export function scheduledEnvelope(fire: Fire): Envelope {
  const { schedule, tick, taskId, queue } = fire;
  const o = schedule.options;
  return createEnvelope({
    task: schedule.task,
    args: schedule.args,
    queue,
    id: taskId,
    ...(o.priority !== undefined ? { priority: o.priority } : {}),
    ...(o.maxRetries !== undefined ? { maxRetries: o.maxRetries } : {}),
    ...(o.expires !== undefined ? { expires: tick + o.expires } : {}),
    headers: scheduleHeaders(fire),
  });
}

/** Headers every scheduled call carries: which schedule fired it, for which tick. */
export function scheduleHeaders(fire: Fire): Record<string, string> {
  return {
    ...fire.schedule.options.headers,
    'taskfleet-schedule': fire.schedule.name,
    'taskfleet-tick': new Date(fire.tick).toISOString(),
  };
}
