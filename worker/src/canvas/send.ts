import { CanvasError } from '../errors.ts';
import { GroupResult, resultOf } from '../group-result.ts';
import type { AsyncResult, ResultSource } from '../result.ts';
import type { ApplyOptions, Canvas, TaskFailure } from '../task.ts';
import { type Compilable, Compiler } from './compile.ts';
import { plan } from './launch.ts';

/** What every canvas object offers, so that composites can pass options and links down to their parts. */
export interface CanvasObject extends Compilable {
  set(options: ApplyOptions<never>): CanvasObject;
  onSuccess?(next: Canvas<[never], unknown>): CanvasObject;
  onError(errback: Canvas<[TaskFailure], unknown>): CanvasObject;
}

/**
 * Sends a workflow: `options` apply to the calls it starts with, `link` and `linkError` to its
 * result (see each canvas's onSuccess and onError). Compiled first, so nothing is sent if any part
 * is wrong; then its chords are opened and its first calls published.
 */
export async function sendCanvas<R>(canvas: CanvasObject, options: ApplyOptions<never> = {}): Promise<AsyncResult<R>> {
  const app = canvas.app;
  // Only an empty group has no app: it sends nothing and its result is [].
  if (!app) return new GroupResult(undefined as unknown as ResultSource, 'empty', []) as unknown as AsyncResult<R>;
  const { link, linkError, ...head } = options;
  let whole = Object.keys(head).length > 0 ? canvas.set(head) : canvas;
  for (const next of listOf(link)) {
    if (!whole.onSuccess) {
      throw new CanvasError('CANVAS_INVALID', 'a group has no single result to link: make it a chord');
    }
    whole = whole.onSuccess(next);
  }
  for (const errback of listOf(linkError)) whole = whole.onError(errback);
  const flow = new Compiler(app).root(whole);
  const context = {
    queue: app.defaultQueue,
    chordTtlMs: app.resultExpires,
    now: Date.now(),
    etaHorizonMs: app.etaHorizon,
  };
  await app.producer.launch(plan(flow, context));
  return resultOf<R>(app, flow);
}

export function listOf<T>(x: T | readonly T[] | undefined): readonly T[] {
  return x === undefined ? [] : Array.isArray(x) ? (x as readonly T[]) : [x as T];
}
