import { TaskfleetError } from 'taskfleet';

/**
 * A TaskQueue spec the operator cannot act on, whatever it retries: the reconciler turns it into a
 * `Ready=False` condition (reason `InvalidSpec`) and an event, and waits for the spec to change instead
 * of retrying in a loop. The message says what to change; `field` names where, as a spec path.
 */
export class TaskQueueSpecError extends TaskfleetError {
  override name = 'TaskQueueSpecError';
  /** The offending field, e.g. `spec.worker.template.spec.containers`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('INVALID_SPEC', message);
    this.field = field;
  }
}

/**
 * Why a reconcile stops short of probing and scaling: `Ready=False` with this reason, a Warning Event,
 * and nothing else written. `retry`: look again every poll, since what refused may change without the
 * spec changing (an HPA deleted, a target created); otherwise wait for a new generation.
 */
export interface Refusal {
  reason: string;
  message: string;
  retry: boolean;
}

/** A problem only the user can fix (a missing Secret, an unsupported broker): a condition, not a retry loop. */
export class BrokerConfigError extends TaskfleetError {
  override name = 'BrokerConfigError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('BROKER_CONFIG', message);
    this.reason = reason;
  }
}
