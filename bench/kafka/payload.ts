import { createEnvelope, encodeEnvelope } from '../../worker/src/message/envelope.ts';

/**
 * One no-op task as our envelope, encoded once: the bare loops send and decode the same bytes a
 * Taskfleet task is, so the bench measures the broker and the client library, not our SDK.
 */
export function noopEnvelope(queue: string): Buffer {
  return Buffer.from(encodeEnvelope(createEnvelope({ task: 'noop', args: [0], queue })));
}
