import { type NamedReference, nameProblem, quoteName, secretKeyReferences } from '../api/names.ts';
import type { TaskQueue } from '../api/types.ts';
import { brokerNamedReferences } from '../brokers/registry.ts';
import { TaskQueueSpecError } from './errors.ts';

/** Every object name and Secret key of a TaskQueue spec that the operator would send in a request or read. */
export function namedReferences(tq: TaskQueue): NamedReference[] {
  const { broker, resultBackend, scaleTargetRef } = tq.spec;
  const refs = [
    ...brokerNamedReferences(broker),
    ...secretKeyReferences('spec.resultBackend.redis.urlFrom', resultBackend?.redis?.urlFrom),
  ];
  if (scaleTargetRef) {
    refs.push({
      field: 'spec.scaleTargetRef.name',
      kind: 'subdomain',
      what: 'Deployment name',
      value: scaleTargetRef.name,
    });
  }
  return refs;
}

/**
 * The first object name of the spec that the current CRD would refuse, as a TaskQueueSpecError naming the
 * field, or undefined. The API server enforces the same patterns now; a TaskQueue admitted under an older,
 * looser CRD can still hold such a name (`../../kube-system/secrets/x`), and the reconciler must refuse it
 * before it reads or sends anything for it.
 */
export function invalidName(tq: TaskQueue): TaskQueueSpecError | undefined {
  for (const ref of namedReferences(tq)) {
    const problem = nameProblem(ref.kind, ref.value);
    if (!problem) continue;
    return new TaskQueueSpecError(
      ref.field,
      `${ref.field} ${quoteName(ref.value ?? '')} is not a valid ${ref.what}: it ${problem}. The operator reads and changes nothing for this TaskQueue until the spec is fixed (it was admitted under an older CRD; apply the current one, see docs/install.md#upgrading)`,
    );
  }
  return undefined;
}
