import { API_VERSION, KIND, type TaskQueue } from '../api/types.ts';
import { KubeApiError, type KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { LogLine, Scrubber } from './scrub.ts';

/** A repeated identical Event is recorded once in this long at most. */
export const EVENT_REPEAT_MS = 300_000;

/**
 * The last Event recorded per reason, so a steady error is reported once, not every poll. Keyed by reason
 * (the operator's own words, never the spec's), so it holds a handful of entries at most.
 */
export type RecordedEvents = Map<string, { message: string; at: number }>;

/**
 * Whether an Event is recorded at `now`, remembering it in `recorded` if so: always when `always` (a
 * scale), else unless the last one of its reason said the same less than {@link EVENT_REPEAT_MS} ago.
 */
export function shouldRecord(
  recorded: RecordedEvents,
  reason: string,
  message: string,
  now: number,
  always = false,
): boolean {
  const last = recorded.get(reason);
  if (!always && last && last.message === message && now - last.at < EVENT_REPEAT_MS) return false;
  recorded.set(reason, { message, at: now });
  return true;
}

/** Records an Event of the TaskQueue being reconciled (see {@link eventRecorder}). */
export type RecordEvent = (
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  always?: boolean,
) => Promise<void>;

/** What recording Events takes. */
export interface EventContext {
  kube: Pick<KubeClient, 'post'>;
  /** Who writes the Events (`reportingInstance`). */
  identity: string;
  clock: () => number;
  /** The reconcile's scrubber: every message passes it first. */
  scrub: Pick<Scrubber, 'text'>;
  /** The reconcile's log (scrubbed): a Warning is logged too, whenever it is recorded. */
  say: LogLine;
}

/**
 * The Events of one reconcile of `tq`, deduplicated by `recorded` (the queue's, kept between polls). An
 * Event the API server refuses is logged, not thrown: it must not fail the reconcile.
 */
export function eventRecorder(ctx: EventContext, tq: TaskQueue, recorded: RecordedEvents): RecordEvent {
  return async (type, reason, message, always = false) => {
    message = ctx.scrub.text(message);
    const now = ctx.clock();
    if (!shouldRecord(recorded, reason, message, now, always)) return;
    // What the Event says, the log says too (as often), for whoever reads the operator rather than the namespace.
    if (type === 'Warning') {
      ctx.say('warning', { taskqueue: `${tq.metadata.namespace}/${tq.metadata.name}`, reason, message });
    }
    const time = new Date(now).toISOString();
    try {
      await ctx.kube.post(
        apiPath({ group: '', version: 'v1', resource: 'events', namespace: tq.metadata.namespace as string }),
        {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { generateName: `${tq.metadata.name}.`, namespace: tq.metadata.namespace },
          involvedObject: {
            apiVersion: API_VERSION,
            kind: KIND,
            name: tq.metadata.name,
            namespace: tq.metadata.namespace,
            uid: tq.metadata.uid,
          },
          type,
          reason,
          message,
          source: { component: 'taskfleet-operator' },
          reportingComponent: 'taskfleet.dev/operator',
          reportingInstance: ctx.identity,
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      );
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      ctx.say('could not record an event', { reason, error: error.message });
    }
  };
}
