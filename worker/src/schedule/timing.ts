import { Cron } from 'croner';
import { ConfigError } from '../errors.ts';

/**
 * When a schedule fires: a sequence of instants (epoch ms), the same on every beat and every clock,
 * so that a tick names one fire fleet-wide.
 */
export interface Timing {
  /** The first tick strictly after `after`, or undefined when there is none. */
  next(after: number): number | undefined;
  /** The last tick at or before `at`, or undefined when there is none. */
  latest(at: number): number | undefined;
  /** In words, for logs and status: `cron "0 3 * * *" in Europe/Paris`, `every 30000 ms`. */
  readonly description: string;
}

/** Checks an IANA time zone name the way every date function will read it. */
export function assertTimeZone(timeZone: string, where: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
  } catch {
    throw new ConfigError(
      `${where}: unknown time zone ${JSON.stringify(timeZone)}: use an IANA name such as Europe/Paris, America/New_York or UTC`,
    );
  }
}

/**
 * Ticks of a cron expression in a time zone: five fields (minute hour day-of-month month day-of-week),
 * or six with seconds first; nicknames such as `@daily` too. Day of month and day of week combine with
 * OR, as in Vixie cron.
 *
 * Daylight saving time follows Vixie cron (croner's `fixedTimeRule: 'no-wildcard'`):
 * - a job with fixed seconds, minutes and hours (no `*` and no step: `30 2 * * *`, `0 1-3 * * *`) runs
 *   once when its time occurs twice (the first time), and at the first instant after the gap when its
 *   time does not exist (02:30 on a spring-forward night runs at 03:00);
 * - a job with a wildcard or a step (`*\/15 * * * *`, `0 * * * *`) keeps its pace in real time: it runs in
 *   both passes through a repeated hour and has nothing to run in a skipped one.
 */
export function cronTiming(expression: string, timeZone: string, where: string): Timing {
  assertTimeZone(timeZone, where);
  let cron: Cron;
  try {
    cron = new Cron(expression, {
      timezone: timeZone,
      paused: true,
      mode: '5-or-6-parts',
      fixedTimeRule: 'no-wildcard',
    });
  } catch (error) {
    throw new ConfigError(
      `${where}: cron ${JSON.stringify(expression)} is not valid (${(error as Error).message}): use five fields ` +
        '(minute hour day-of-month month day-of-week, e.g. "0 3 * * *") or six with seconds first ("*/10 * * * * *")',
    );
  }
  // A valid pattern may still never match (the 31st of February): better said now than never fired.
  if (cron.nextRun(new Date(Date.UTC(2000, 0, 1))) === null) {
    throw new ConfigError(`${where}: cron ${JSON.stringify(expression)} never matches a date`);
  }
  return {
    next: (after) => cron.nextRun(new Date(after))?.getTime(),
    latest: (at) => cron.previousRuns(1, new Date(at + 1))[0]?.getTime(),
    description: `cron ${JSON.stringify(expression)} in ${timeZone}`,
  };
}

/**
 * Ticks every `every` ms, at the multiples of `every` since the Unix epoch (UTC): every beat computes
 * the same ticks whenever it starts, and `every: 3_600_000` ticks on the hour.
 */
export function intervalTiming(every: number, where: string): Timing {
  if (typeof every !== 'number' || !Number.isInteger(every) || every <= 0) {
    throw new ConfigError(`${where}: every must be a positive whole number of ms, not ${JSON.stringify(every)}`);
  }
  return {
    next: (after) => (Math.floor(after / every) + 1) * every,
    latest: (at) => Math.floor(at / every) * every,
    description: `every ${every} ms`,
  };
}
