import { ConfigError, SerializationError } from '../errors.ts';
import { MAX_PRIORITY, MIN_PRIORITY } from '../message/envelope.ts';
import { assertJson, type JsonValue } from '../message/json.ts';
import { assertQueueName } from '../queue-name.ts';
import type { ApplyOptions } from '../task.ts';
import { cronTiming, intervalTiming, type Timing } from './timing.ts';

/**
 * What to do with ticks that passed while no beat could fire them (every beat was down, or Redis
 * was), once one can again:
 * - `'fire-once'`: one fire for the lot, as Celery beat does on start — unless a tick on time fires
 *   anyway, which then stands for them;
 * - `'skip'`: none; the schedule resumes at its next tick.
 */
export type MissedTickPolicy = 'fire-once' | 'skip';

/** Options of the calls a schedule makes. */
export interface ScheduleCallOptions {
  /** @defaultValue the task's queue, else the app's defaultQueue */
  queue?: string;
  /** 0 (most urgent) to 9. @defaultValue the task's priority, else 5 */
  priority?: number;
  /** A fire not started within this long after its tick is revoked instead of run (ms). */
  expires?: number;
  maxRetries?: number;
  headers?: Record<string, string>;
}

/** A complete call made with `task.s(...)`: every argument given. */
export interface ScheduledSignature {
  readonly task: string;
  readonly args: readonly unknown[];
  readonly options: Readonly<ApplyOptions>;
}

interface ScheduleCommon {
  /** What to call: a signature with every argument (`report.s('daily')`), or a task's name (see `args`). */
  task: string | ScheduledSignature;
  /** The arguments, when `task` is a name. @defaultValue [] */
  args?: readonly unknown[];
  /** @defaultValue 'fire-once' */
  missed?: MissedTickPolicy;
  /**
   * A tick that no beat could fire for this long after its time counts as missed and falls under the
   * `missed` policy; a tick later by less (a beat's failover, a slow Redis) is still fired, each one.
   * Keep it above the beat's lease duration, or a failover may skip ticks. @defaultValue 60_000
   */
  missedAfter?: number;
  options?: ScheduleCallOptions;
}

/** A periodic task: at the ticks of a cron expression in a time zone, or every so many ms. */
export type ScheduleDefinition = ScheduleCommon &
  (
    | {
        /** Five fields (minute hour day-of-month month day-of-week), or six with seconds first; or `@daily`… */
        cron: string;
        /** IANA name; the cron fields are read in its wall-clock time, DST included. @defaultValue 'UTC' */
        timeZone?: string;
        every?: undefined;
      }
    | {
        /** ms between ticks; ticks fall on multiples of it since the Unix epoch. */
        every: number;
        cron?: undefined;
        timeZone?: undefined;
      }
  );

/** A schedule checked and ready to fire. */
export interface Schedule {
  readonly name: string;
  readonly timing: Timing;
  readonly task: string;
  readonly args: readonly JsonValue[];
  readonly options: Readonly<ScheduleCallOptions>;
  readonly missed: MissedTickPolicy;
  readonly missedAfter: number;
}

/** @defaultValue of `missedAfter`: one minute. */
export const DEFAULT_MISSED_AFTER_MS = 60_000;

const scheduleName = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/;

export interface ParseScheduleOptions {
  /**
   * Whether a task of that name exists (the app's registry). Without it, any name is taken: a host that
   * has no registry (the operator) fires names as they are written.
   */
  knownTask?: (name: string) => boolean;
  /** Prefix of error messages, e.g. the file and entry the definition came from. @defaultValue `schedule <name>` */
  where?: string;
}

/** Checks a definition and makes a schedule of it; every mistake is a ConfigError naming the field. */
export function parseSchedule(
  name: string,
  definition: ScheduleDefinition,
  options: ParseScheduleOptions = {},
): Schedule {
  const where = options.where ?? `schedule ${JSON.stringify(name)}`;
  if (typeof name !== 'string' || !scheduleName.test(name)) {
    throw new ConfigError(
      `${where}: the name must be 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`,
    );
  }
  if (typeof definition !== 'object' || definition === null) {
    throw new ConfigError(`${where}: the definition must be an object with cron or every, and task`);
  }
  const d = definition as ScheduleDefinition & Record<string, unknown>;
  const known = new Set(['task', 'args', 'missed', 'missedAfter', 'options', 'cron', 'timeZone', 'every']);
  const unknown = Object.keys(d).filter((k) => !known.has(k) && k !== 'name');
  if (unknown.length > 0) {
    throw new ConfigError(`${where}: unknown field ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  }

  let timing: Timing;
  if (d.cron !== undefined && d.every !== undefined) {
    throw new ConfigError(`${where}: cron and every cannot be set together: choose one`);
  } else if (d.cron !== undefined) {
    if (typeof d.cron !== 'string') throw new ConfigError(`${where}: cron must be a string such as "0 3 * * *"`);
    if (d.timeZone !== undefined && typeof d.timeZone !== 'string') {
      throw new ConfigError(`${where}: timeZone must be a string such as "Europe/Paris"`);
    }
    timing = cronTiming(d.cron, d.timeZone ?? 'UTC', where);
  } else if (d.every !== undefined) {
    if (d.timeZone !== undefined) {
      throw new ConfigError(`${where}: timeZone applies to cron only; every counts real time`);
    }
    timing = intervalTiming(d.every, where);
  } else {
    throw new ConfigError(`${where}: needs cron (e.g. "0 3 * * *") or every (ms)`);
  }

  let task: string;
  let args: readonly unknown[];
  let callOptions: ScheduleCallOptions = {};
  if (typeof d.task === 'string') {
    task = d.task;
    args = d.args ?? [];
  } else if (typeof d.task === 'object' && d.task !== null && typeof d.task.task === 'string') {
    if (d.args !== undefined) throw new ConfigError(`${where}: args come from the signature; do not set both`);
    task = d.task.task;
    args = d.task.args;
    const o = d.task.options;
    callOptions = {
      ...(o.queue !== undefined ? { queue: o.queue } : {}),
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
      ...(typeof o.expires === 'number' ? { expires: o.expires } : {}),
      ...(o.maxRetries !== undefined ? { maxRetries: o.maxRetries } : {}),
      ...(o.headers !== undefined ? { headers: o.headers } : {}),
    };
    if (o.countdown !== undefined || o.eta !== undefined || o.taskId !== undefined || o.expires instanceof Date) {
      throw new ConfigError(
        `${where}: a scheduled call cannot carry countdown, eta, taskId or an expiry Date: the tick decides them`,
      );
    }
  } else {
    throw new ConfigError(`${where}: task must be a task's name or a signature made with task.s(...)`);
  }
  if (!task) throw new ConfigError(`${where}: task must not be empty`);
  if (options.knownTask && !options.knownTask(task)) {
    throw new ConfigError(
      `${where}: no task named ${JSON.stringify(task)} is registered: register it with app.task() before its schedule`,
    );
  }
  if (!Array.isArray(args)) throw new ConfigError(`${where}: args must be an array`);
  args.forEach((arg, i) => {
    try {
      assertJson(arg, `${where}: argument ${i + 1} of ${task}`);
    } catch (error) {
      // A schedule is configuration: its every mistake is a ConfigError, the serialization one its cause.
      if (error instanceof SerializationError) throw new ConfigError(error.message, { cause: error });
      throw error;
    }
  });

  if (d.options !== undefined && (typeof d.options !== 'object' || d.options === null || Array.isArray(d.options))) {
    throw new ConfigError(`${where}: options must be an object`);
  }
  callOptions = checkCallOptions({ ...callOptions, ...d.options }, where);

  const missed = d.missed ?? 'fire-once';
  if (missed !== 'fire-once' && missed !== 'skip') {
    throw new ConfigError(`${where}: missed must be 'fire-once' or 'skip', not ${JSON.stringify(missed)}`);
  }
  const missedAfter = d.missedAfter ?? DEFAULT_MISSED_AFTER_MS;
  if (typeof missedAfter !== 'number' || !Number.isInteger(missedAfter) || missedAfter < 0) {
    throw new ConfigError(`${where}: missedAfter must be a whole number of ms ≥ 0`);
  }
  return Object.freeze({
    name,
    timing,
    task,
    args: Object.freeze([...(args as JsonValue[])]),
    options: Object.freeze(callOptions),
    missed,
    missedAfter,
  });
}

function checkCallOptions(options: unknown, where: string): ScheduleCallOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(`${where}: options must be an object`);
  }
  const o = options as Record<string, unknown>;
  const allowed = new Set(['queue', 'priority', 'expires', 'maxRetries', 'headers']);
  const unknown = Object.keys(o).filter((k) => !allowed.has(k));
  if (unknown.length > 0) {
    throw new ConfigError(
      `${where}: unknown option ${unknown.map((k) => JSON.stringify(k)).join(', ')} (allowed: ${[...allowed].join(', ')})`,
    );
  }
  if (o.queue !== undefined) {
    if (typeof o.queue !== 'string') throw new ConfigError(`${where}: options.queue must be a string`);
    assertQueueName(o.queue);
  }
  if (
    o.priority !== undefined &&
    !(Number.isInteger(o.priority) && (o.priority as number) >= MIN_PRIORITY && (o.priority as number) <= MAX_PRIORITY)
  ) {
    throw new ConfigError(`${where}: options.priority must be an integer from 0 (most urgent) to 9`);
  }
  if (o.expires !== undefined && !(Number.isInteger(o.expires) && (o.expires as number) > 0)) {
    throw new ConfigError(`${where}: options.expires must be a positive whole number of ms`);
  }
  if (o.maxRetries !== undefined && !(Number.isInteger(o.maxRetries) && (o.maxRetries as number) >= 0)) {
    throw new ConfigError(`${where}: options.maxRetries must be an integer ≥ 0`);
  }
  if (
    o.headers !== undefined &&
    !(
      typeof o.headers === 'object' &&
      o.headers !== null &&
      Object.values(o.headers).every((v) => typeof v === 'string')
    )
  ) {
    throw new ConfigError(`${where}: options.headers must be an object of strings`);
  }
  return o as ScheduleCallOptions;
}

/**
 * The task id of a schedule's fire at a tick: the same on every beat, so a second enqueue of the same
 * tick would carry the same id, and `taskfleet result` finds a fire by its schedule and time.
 */
export function scheduledTaskId(schedule: string, tick: number): string {
  return `${schedule}@${new Date(tick).toISOString()}`;
}

/** Adds schedules to a set of them, refusing a name used twice. */
export function addSchedule(to: Map<string, Schedule>, schedule: Schedule, where?: string): void {
  if (to.has(schedule.name)) {
    throw new ConfigError(
      `${where ?? `schedule ${JSON.stringify(schedule.name)}`}: the name ${JSON.stringify(schedule.name)} is declared twice: schedule names must be unique`,
    );
  }
  to.set(schedule.name, schedule);
}
