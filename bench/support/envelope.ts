import { randomUUID } from 'node:crypto';
import type { Envelope } from 'taskfleet';

/**
 * A no-op task's envelope, encoded as Taskfleet's SDK encodes it (`createEnvelope` then
 * `JSON.stringify`, same fields in the same order; the package does not export them): the bare loops
 * and redis-benchmark send these bytes, so they carry the same messages a Taskfleet task is. The
 * `Envelope` type keeps the fields in step with the package's.
 */
export function noopEnvelope(queue: string, arg = 0): string {
  const id = randomUUID();
  const envelope: Envelope = {
    v: 1,
    id,
    task: 'noop',
    args: [arg],
    kwargs: {},
    queue,
    attempt: 1,
    priority: 5,
    rootId: id,
    createdAt: Date.now(),
    headers: {},
  };
  return JSON.stringify(envelope);
}
