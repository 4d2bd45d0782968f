import { type NameKind, nameProblem, quoteName } from '../api/names.ts';
import type { SecretKeySelector, TaskQueue } from '../api/types.ts';
import { TaskQueueSpecError } from './errors.ts';

/** One object name a spec gives, where, and what kind of name it must be. */
interface NamedReference {
  field: string;
  kind: NameKind;
  what: string;
  value: unknown;
}

/** Every object name and Secret key of a TaskQueue spec that the operator would send in a request or read. */
export function namedReferences(tq: TaskQueue): NamedReference[] {
  const refs: NamedReference[] = [];
  const keyRef = (field: string, ref: SecretKeySelector | undefined) => {
    if (ref === undefined) return;
    const selector = (ref as { secretKeyRef?: { name?: unknown; key?: unknown } }).secretKeyRef;
    refs.push(
      { field: `${field}.secretKeyRef.name`, kind: 'subdomain', what: 'Secret name', value: selector?.name },
      { field: `${field}.secretKeyRef.key`, kind: 'secretKey', what: 'Secret key', value: selector?.key },
    );
  };
  const { broker, resultBackend, scaleTargetRef } = tq.spec;
  keyRef('spec.broker.redis.urlFrom', broker?.redis?.urlFrom);
  keyRef('spec.resultBackend.redis.urlFrom', resultBackend?.redis?.urlFrom);
  const kafka = broker?.kafka;
  keyRef('spec.broker.kafka.tls.caFrom', kafka?.tls?.caFrom);
  keyRef('spec.broker.kafka.tls.certFrom', kafka?.tls?.certFrom);
  keyRef('spec.broker.kafka.tls.keyFrom', kafka?.tls?.keyFrom);
  if (kafka?.sasl) {
    refs.push({
      field: 'spec.broker.kafka.sasl.secretRef.name',
      kind: 'subdomain',
      what: 'Secret name',
      value: kafka.sasl.secretRef?.name,
    });
  }
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
