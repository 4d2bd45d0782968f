import type { TaskQueue } from '../api/types.ts';
import type { Refusal } from './errors.ts';
import { invalidName } from './spec-names.ts';

/**
 * Why nothing may be read or sent for this TaskQueue, or undefined: a spec the current CRD refuses,
 * admitted under an older one. Terminal until the spec changes.
 */
export function specRefusal(tq: TaskQueue): Refusal | undefined {
  // A name that would go into a request path: nothing is read or sent for it (no Secret, no Deployment).
  const badName = invalidName(tq);
  if (badName) return { reason: 'InvalidSpec', message: badName.message, retry: false };
  // The API server refuses this now; say so and wait.
  if (tq.spec.broker.kafka && tq.spec.schedules?.length) {
    const message =
      'spec.schedules need a Redis broker: each tick is recorded and enqueued in one Redis transaction, which Kafka cannot join. Move the schedules to a TaskQueue on Redis, or remove them';
    return { reason: 'SchedulesNeedRedis', message, retry: false };
  }
  return undefined;
}
