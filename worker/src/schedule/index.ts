/** Periodic tasks: schedules, the Scheduler any host drives, its Redis store and lease, and the beat. */
export { Beat, type BeatOptions } from './beat.ts';
export { type DueTicks, dueTicks } from './due.ts';
export { loadScheduleFile, parseScheduleDocument } from './file.ts';
export { type FencingLease, RedisLease, type RedisLeaseOptions } from './lease.ts';
export {
  DEFAULT_MISSED_AFTER_MS,
  type MissedTickPolicy,
  type ParseScheduleOptions,
  parseSchedule,
  type Schedule,
  type ScheduleCallOptions,
  type ScheduleDefinition,
  type ScheduledSignature,
  scheduledTaskId,
} from './schedule.ts';
export {
  type Fire,
  Scheduler,
  type SchedulerOptions,
  type ScheduleStatus,
  scheduledEnvelope,
  scheduleHeaders,
  type TickReport,
} from './scheduler.ts';
export {
  type AdvanceRequest,
  type Fence,
  type FireOutcome,
  type FireRequest,
  RedisScheduleStore,
  type ScheduleState,
  type ScheduleStore,
  type ScheduleTarget,
} from './store.ts';
export { assertTimeZone, cronTiming, intervalTiming, type Timing } from './timing.ts';
