import { setTimeout as sleep } from 'node:timers/promises';
import type { Taskfleet } from '../app.ts';
import { RedisBroker } from '../brokers/redis/broker.ts';
import { ConfigError } from '../errors.ts';
import { type Logger, silentLogger } from '../observe/logger.ts';
import { RedisLease } from './lease.ts';
import { addSchedule, type Schedule } from './schedule.ts';
import { type Fire, Scheduler, type SchedulerOptions, scheduleHeaders, type TickReport } from './scheduler.ts';
import { RedisScheduleStore } from './store.ts';

export interface BeatOptions {
  /** Schedules besides those the app declares (`taskfleet beat --schedules <file>`). */
  schedules?: readonly Schedule[];
  logger?: Logger;
  /**
   * How long a beat that stops renewing (killed, partitioned) keeps the others waiting before one takes
   * over, ms. Ticks that fall in that time are fired late, not lost, as long as it is below each
   * schedule's `missedAfter`. @defaultValue 10_000
   */
  leaseTtl?: number;
  /** This beat's name in the lease and the logs. @defaultValue `<hostname>:<pid>:<random>` */
  identity?: string;
  /** The clock ticks are read on (epoch ms). @defaultValue Date.now */
  clock?: () => number;
  /** See SchedulerOptions.beforeFire. */
  beforeFire?: SchedulerOptions['beforeFire'];
}

/**
 * The `taskfleet beat` process: the app's schedules fired by whichever beat holds the lease in Redis.
 * Run two or more for availability: the others wait, and one takes over when the holder stops
 * renewing; each tick still fires once (see Scheduler). SIGTERM releases the lease at once.
 */
export class Beat {
  readonly #app: Taskfleet;
  readonly #lease: RedisLease;
  readonly #scheduler: Scheduler;
  readonly #logger: Logger;
  readonly #clock: () => number;
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #leading = false;

  constructor(app: Taskfleet, options: BeatOptions = {}) {
    this.#app = app;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? Date.now;
    const schedules = new Map(app.schedules);
    for (const schedule of options.schedules ?? []) addSchedule(schedules, schedule);
    if (schedules.size === 0) {
      throw new ConfigError('nothing to schedule: declare schedules with app.schedule(), or pass --schedules <file>');
    }
    const broker = app.broker;
    if (!(broker instanceof RedisBroker)) throw new ConfigError('taskfleet beat needs a Redis broker');
    const leaseTtl = options.leaseTtl ?? 10_000;
    if (!(Number.isInteger(leaseTtl) && leaseTtl >= 100)) {
      throw new ConfigError(`the beat's lease duration must be a whole number of ms ≥ 100, not ${leaseTtl}`);
    }
    this.#lease = new RedisLease(broker.redis, {
      prefix: app.prefix,
      ttlMs: leaseTtl,
      ...(options.identity !== undefined ? { identity: options.identity } : {}),
    });
    for (const schedule of schedules.values()) {
      if (schedule.missedAfter <= leaseTtl) {
        this.#logger.warn('missedAfter is not above the lease duration: a failover may count ticks as missed', {
          schedule: schedule.name,
          missedAfterMs: schedule.missedAfter,
          leaseTtlMs: leaseTtl,
        });
      }
    }
    this.#scheduler = new Scheduler({
      schedules: [...schedules.values()],
      store: new RedisScheduleStore(broker.redis, { prefix: app.prefix, maxMessageBytes: app.maxMessageBytes }),
      lease: this.#lease,
      clock: this.#clock,
      logger: this.#logger,
      queueOf: (s) => s.options.queue ?? app.definition(s.task).options.queue ?? app.defaultQueue,
      envelope: (fire) => this.#envelope(fire),
      ...(options.beforeFire ? { beforeFire: options.beforeFire } : {}),
    });
  }

  /** The same message the SDK builds for `task.applyAsync(args, options)`, with the fire's id. */
  #envelope(fire: Fire): ReturnType<Taskfleet['envelopeFor']> {
    const { schedule, tick, taskId, queue } = fire;
    const o = schedule.options;
    return this.#app.envelopeFor(this.#app.definition(schedule.task), schedule.args, {
      taskId,
      queue,
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
      ...(o.maxRetries !== undefined ? { maxRetries: o.maxRetries } : {}),
      ...(o.expires !== undefined ? { expires: new Date(tick + o.expires) } : {}),
      headers: scheduleHeaders(fire),
    });
  }

  get identity(): string {
    return this.#lease.identity;
  }

  get leading(): boolean {
    return this.#leading;
  }

  get scheduler(): Scheduler {
    return this.#scheduler;
  }

  get lease(): RedisLease {
    return this.#lease;
  }

  /**
   * One round: renew or take the lease, then fire what is due if this beat holds it. `start()` calls
   * it in a loop; a test may call it directly, with its own clock.
   */
  async step(): Promise<TickReport> {
    let token: number | undefined;
    try {
      token = await this.#lease.acquireOrRenew();
    } catch (error) {
      this.#setLeading(false);
      throw error;
    }
    this.#setLeading(token !== undefined, token);
    const report = await this.#scheduler.tick();
    if (token !== undefined && !report.leading) this.#setLeading(false);
    return report;
  }

  #setLeading(leading: boolean, token?: number): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    if (leading) this.#logger.info('became the leader', { identity: this.identity, token, pid: process.pid });
    else this.#logger.info('stopped leading', { identity: this.identity });
  }

  /** Runs rounds until stop(): at each schedule's next tick, and at least every third of the lease. */
  start(): void {
    if (this.#loop) return;
    const signal = this.#abort.signal;
    const retryMs = Math.max(50, Math.floor(this.#lease.ttlMs / 3));
    this.#logger.info('beat started', {
      identity: this.identity,
      pid: process.pid,
      leaseTtlMs: this.#lease.ttlMs,
      schedules: this.#scheduler.schedules.map((s) => ({ name: s.name, task: s.task, timing: s.timing.description })),
    });
    this.#loop = (async () => {
      while (!signal.aborted) {
        let wait = retryMs;
        try {
          const report = await this.step();
          if (report.leading && report.nextDueAt !== undefined) {
            wait = Math.min(wait, Math.max(0, report.nextDueAt - this.#clock()));
          }
        } catch (error) {
          this.#logger.warn('beat round failed; retrying', { error });
        }
        await sleep(wait, undefined, { signal }).catch(() => {});
      }
    })();
  }

  /**
   * Stops the rounds (a fire in progress completes) and releases the lease, so another beat takes over
   * at once. While Redis is away neither can complete: after `graceMs` it gives up waiting, and the
   * lease lapses by itself.
   */
  async stop({ graceMs = 5000 }: { graceMs?: number } = {}): Promise<void> {
    this.#abort.abort();
    const gaveUp = async () => {
      await sleep(graceMs, undefined, { ref: false });
      return false;
    };
    await Promise.race([this.#loop, gaveUp()]);
    const released = await Promise.race([this.#lease.release().catch(() => false), gaveUp()]);
    this.#setLeading(false);
    this.#logger.info('beat stopped', { identity: this.identity, released });
  }
}
