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
