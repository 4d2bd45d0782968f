import type { TaskQueue } from '../api/types.ts';
import { brokerFields, definitionOf, setBroker } from '../brokers/registry.ts';
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
  const kind = setBroker(tq.spec.broker);
  if (kind && tq.spec.schedules?.length && !definitionOf(kind).capabilities.schedules) {
    const able = brokerFields.filter((k) => definitionOf(k).capabilities.schedules).map((k) => definitionOf(k).name);
    const on = able.join(' or ');
    const message = `spec.schedules need a ${on} broker: each tick is recorded and enqueued in one ${on} transaction, which ${definitionOf(kind).name} cannot join. Move the schedules to a TaskQueue on ${on}, or remove them`;
    return { reason: 'SchedulesNeedRedis', message, retry: false };
  }
  return undefined;
}
