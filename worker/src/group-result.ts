import { GroupFailedError, ResultTimeoutError } from './errors.ts';
import { type Flow, isGroup, isTask, type SignatureSpec } from './message/canvas-spec.ts';
import { AsyncResult, type ResultSource } from './result.ts';
import type { TaskState } from './results/result.ts';

/**
 * The results of a group's members, as Celery's GroupResult: `get()` gathers them in the order the
 * group lists its members. It is an AsyncResult too, so a chain that ends in a group hands one back.
 */
export class GroupResult<R = unknown[]> extends AsyncResult<R> {
  /** The members' results, in order (a member that is itself a group has a GroupResult). */
  readonly results: readonly AsyncResult<unknown>[];
  readonly #app: ResultSource;

  constructor(app: ResultSource, id: string, results: readonly AsyncResult<unknown>[]) {
    super(app, id);
    this.#app = app;
    this.results = results;
  }

  /**
   * Waits for every member and returns their results in order. Rejects with GroupFailedError, naming
   * the member, as soon as one has failed for good (or was revoked); ResultTimeoutError after `timeout`.
   */
  override async get({ timeout }: { timeout?: number } = {}): Promise<R> {
    const deadline = timeout === undefined ? undefined : Date.now() + timeout;
    const values = await Promise.all(
      this.results.map(async (result, index) => {
        const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
        try {
          return await result.get(left === undefined ? {} : { timeout: left });
        } catch (error) {
          if (error instanceof ResultTimeoutError) throw new ResultTimeoutError(this.id, timeout ?? 0);
          throw new GroupFailedError(this.id, index, result.id, error as Error);
        }
      }),
    );
    return values as unknown as R;
  }

  /** True once every member has succeeded, failed for good, or been revoked. */
  override async ready(): Promise<boolean> {
    return (await Promise.all(this.results.map((r) => r.ready()))).every(Boolean);
  }

  /** How many members have succeeded. */
  async completedCount(): Promise<number> {
    return (await Promise.all(this.results.map((r) => r.successful()))).filter(Boolean).length;
  }

  override async successful(): Promise<boolean> {
    return (await this.completedCount()) === this.results.length;
  }

  /** True once any member has failed for good. */
  override async failed(): Promise<boolean> {
    return (await Promise.all(this.results.map((r) => r.failed()))).some(Boolean);
  }

  /** SUCCESS when every member has succeeded; FAILURE (or REVOKED) once one has; PENDING until then. */
  override async state(): Promise<TaskState> {
    const states = await Promise.all(this.results.map((r) => r.state()));
    if (states.includes('FAILURE')) return 'FAILURE';
    if (states.includes('REVOKED')) return 'REVOKED';
    return states.every((s) => s === 'SUCCESS') ? 'SUCCESS' : 'PENDING';
  }

  /** A group has no record of its own: see each member's. */
  override async info(): Promise<undefined> {
    return undefined;
  }

  override async forget(): Promise<void> {
    await Promise.all(this.results.map((r) => r.forget()));
  }

  override async revoke({ terminate = false }: { terminate?: boolean } = {}): Promise<void> {
    await this.#app.producer.revoke(leafIds(this), { terminate });
  }
}

function leafIds(result: AsyncResult<unknown>): string[] {
  return result instanceof GroupResult ? result.results.flatMap(leafIds) : [result.id];
}

/** The result of a flow: its last call's, or for a group, each member's; for a chord, its callback flow's. */
export function resultOf<R>(app: ResultSource, flow: Flow): AsyncResult<R> {
  const last = flow.at(-1);
  if (last === undefined) return new GroupResult(app, 'empty', []) as unknown as AsyncResult<R>;
  if (isTask(last)) return new AsyncResult<R>(app, (last as SignatureSpec).id as string);
  if (isGroup(last)) {
    return new GroupResult(
      app,
      last.id,
      last.members.map((member) => resultOf(app, member)),
    ) as unknown as AsyncResult<R>;
  }
  return resultOf<R>(app, last.body);
}
