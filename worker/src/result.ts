import { ChordFailedError, ResultTimeoutError, TaskFailedError, TaskRevokedError } from './errors.ts';
import { READY_STATES, type ResultRecord, type TaskState } from './results/result.ts';

/**
 * The producer calls a result handle makes (the app's Producer): each within the app's brokerTimeout.
 */
export interface ResultCalls {
  result(id: string): Promise<ResultRecord | undefined>;
  waitReady(id: string, timeoutMs: number): Promise<ResultRecord | undefined>;
  forget(id: string): Promise<void>;
  revoke(ids: readonly string[], options?: { terminate?: boolean }): Promise<void>;
}

/** What a result handle needs of its app. */
export interface ResultSource {
  readonly producer: ResultCalls;
}

/** A handle on a task's result, as Celery's AsyncResult. Every read goes to the result backend. */
export class AsyncResult<R = unknown> {
  readonly id: string;
  readonly #app: ResultSource;

  constructor(app: ResultSource, id: string) {
    this.#app = app;
    this.id = id;
  }

  /** The stored record, or undefined while PENDING (unknown, not started, or expired). */
  info(): Promise<ResultRecord | undefined> {
    return this.#app.producer.result(this.id);
  }

  async state(): Promise<TaskState> {
    return (await this.info())?.state ?? 'PENDING';
  }

  /** True once the task has succeeded, failed for good, or been revoked. */
  async ready(): Promise<boolean> {
    return READY_STATES.has(await this.state());
  }

  async successful(): Promise<boolean> {
    return (await this.state()) === 'SUCCESS';
  }

  async failed(): Promise<boolean> {
    return (await this.state()) === 'FAILURE';
  }

  /**
   * Waits for the result (woken by the backend, not by polling) and returns it; throws TaskFailedError
   * if the task failed (ChordFailedError if it is a chord's result and a member failed), TaskRevokedError
   * if it was revoked, ResultTimeoutError after `timeout` ms.
   * @param options.timeout ms to wait; unset, waits as long as it takes (as Celery does)
   */
  async get({ timeout }: { timeout?: number } = {}): Promise<R> {
    const record = await this.#app.producer.waitReady(this.id, timeout ?? 2 ** 31 - 1);
    if (!record) throw new ResultTimeoutError(this.id, timeout ?? 0);
    switch (record.state) {
      case 'SUCCESS':
        return record.result as R;
      case 'REVOKED':
        throw new TaskRevokedError(this.id);
      default:
        if (record.error?.code === 'CHORD_FAILED' && record.error.chord) {
          throw new ChordFailedError(this.id, record.error.chord);
        }
        throw new TaskFailedError(this.id, record.error ?? { name: 'Error', message: 'unknown failure' });
    }
  }

  /** Deletes the stored result. */
  forget(): Promise<void> {
    return this.#app.producer.forget(this.id);
  }

  /**
   * Revokes the task: a worker that receives it skips it and records REVOKED. With `terminate`, a worker
   * running it aborts it (its handler's signal fires) and frees the slot.
   */
  revoke({ terminate = false }: { terminate?: boolean } = {}): Promise<void> {
    return this.#app.producer.revoke([this.id], { terminate });
  }
}
