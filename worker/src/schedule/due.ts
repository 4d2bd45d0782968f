import type { Schedule } from './schedule.ts';

/** What a schedule has to do at a moment, given what has been done. */
export interface DueTicks {
  /** The ticks to fire now, oldest first. */
  fire: number[];
  /**
   * How many ticks were missed (no beat fired them within `missedAfter`) and are not fired on their
   * own: skipped, or folded into one fire by 'fire-once'. Counted up to `MISSED_COUNT_LIMIT`.
   */
  missed: number;
  /** Once `fire` has fired, every tick at or before this is settled (fired or passed over for good). */
  watermark: number;
  /** The first tick after `now`, when there is one; `more` says ticks at or before `now` remain. */
  next: number | undefined;
  /** More ticks are due than `limit` allowed: call again at once. */
  more: boolean;
}

/** Missed ticks are counted up to here (for logs): past it, "at least this many". */
export const MISSED_COUNT_LIMIT = 10_000;

/**
 * The ticks a schedule should fire at `now`, when every tick at or before `watermark` is settled.
 *
 * Ticks in (watermark, now] are either late (at most `missedAfter` old: a failover, a slow Redis, a
 * beat that was busy) and each fires, or missed (older: no beat could fire them in time) and fall under
 * the schedule's policy: 'fire-once' fires the latest of them, unless a late tick fires anyway;
 * 'skip' fires none. Pure: the same inputs give the same answer on every beat.
 */
export function dueTicks(
  schedule: Pick<Schedule, 'timing' | 'missed' | 'missedAfter'>,
  watermark: number,
  now: number,
  limit = 1000,
): DueTicks {
  const { timing, missedAfter } = schedule;
  const first = timing.next(watermark);
  // The usual answer, and a cheap one: nothing is due yet.
  if (first === undefined || first > now) return { fire: [], missed: 0, watermark, next: first, more: false };
  // Ticks at or after `cutoff` are late; before it, missed.
  const cutoff = now - missedAfter;
  let latestMissed: number | undefined;
  let missed = 0;
  if (first < cutoff) {
    latestMissed = timing.latest(cutoff - 1) ?? first;
    for (let t: number | undefined = first; t !== undefined && t <= latestMissed && missed < MISSED_COUNT_LIMIT; ) {
      missed++;
      t = timing.next(t);
    }
  }
  const late: number[] = [];
  let more = false;
  for (let t = timing.next(Math.max(watermark, cutoff - 1)); t !== undefined && t <= now; t = timing.next(t)) {
    if (late.length === limit) {
      more = true;
      break;
    }
    late.push(t);
  }
  const fire = [...late];
  if (latestMissed !== undefined && late.length === 0 && schedule.missed === 'fire-once') {
    fire.unshift(latestMissed);
    missed--;
  }
  const settled = Math.max(watermark, late.at(-1) ?? watermark, latestMissed ?? watermark);
  return { fire, missed, watermark: settled, next: more ? timing.next(settled) : timing.next(now), more };
}
