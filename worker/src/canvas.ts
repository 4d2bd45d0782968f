/**
 * Celery's canvas: chain, group, chord, and links. Each is a template: every `delay()` sends a new
 * run with new ids. See docs/worker.md, "Workflows".
 */
import { type CanvasApp, COMPILE, type Compiler, emptyChord, isCompilable } from './canvas/compile.ts';
import { type CanvasObject, sendCanvas } from './canvas/send.ts';
import { CanvasError } from './errors.ts';
import type { GroupResult } from './group-result.ts';
import type { Flow } from './message/canvas-spec.ts';
import type { AsyncResult } from './result.ts';
import type { ApplyOptions, Canvas, TaskFailure } from './task.ts';

/** Any canvas, whatever it takes and gives (the top of Canvas: `Missing` is contravariant). */
type AnyCanvas = Canvas<never, unknown>;
/** What a canvas produces. */
export type OutputOf<C> = C extends Canvas<never, infer R> ? R : never;
/** What a canvas needs from the step before. */
export type InputOf<C> = C extends { readonly __input?: (input: infer M) => void } ? M : never;
/** The members' results, in order: a tuple for a tuple of members. */
export type OutputsOf<T extends readonly unknown[]> = { -readonly [K in keyof T]: OutputOf<T[K]> };
/** What every member accepts: the intersection of their first parameters (walked, so `boolean` stays whole). */
type CommonInput<T extends readonly unknown[], Acc = unknown> = number extends T['length']
  ? InputOf<T[number]> extends [infer A]
    ? A
    : never
  : T extends readonly [infer Head, ...infer Rest]
    ? CommonInput<Rest, Acc & (InputOf<Head> extends [infer A] ? A : never)>
    : Acc;
/**
 * What a group needs: nothing if every member is complete; if every member takes one argument (a
 * group as a chain step), a value every member accepts; `never` when they disagree (it cannot run).
 */
export type GroupInput<T extends readonly unknown[]> = [InputOf<T[number]>] extends [[]]
  ? []
  : [InputOf<T[number]>] extends [[unknown]]
    ? [CommonInput<T>]
    : never;

function parts(list: readonly unknown[], what: string): CanvasObject[] {
  return list.map((part, i) => {
    if (!isCompilable(part)) {
      throw new CanvasError(
        'CANVAS_INVALID',
        `${what} ${i + 1} is not a signature, chain, group or chord (make signatures with task.s(...))`,
      );
    }
    return part as CanvasObject;
  });
}

/**
 * What chain, group and chord share: their phantom types, the app that sends them (found in their
 * parts), and `delay()`. `Sent` is what sending gives: a group's GroupResult, the others' AsyncResult.
 */
abstract class Composite<Missing extends unknown[], R, Sent> implements Canvas<Missing, R>, CanvasObject {
  declare readonly __input?: (input: Missing) => void;
  declare readonly __output?: R;
  /** Its parts, in order: the first that has an app gives the whole its app. */
  protected abstract get parts(): readonly CanvasObject[];
  abstract [COMPILE](compiler: Compiler): Flow;
  abstract set(options: ApplyOptions<never>): CanvasObject;
  abstract onError(errback: Canvas<[TaskFailure], unknown>): CanvasObject;

  get app(): CanvasApp | undefined {
    for (const part of this.parts) {
      const app = part.app; // once: each part asks its own parts, so asking twice doubles per level
      if (app) return app;
    }
    return undefined;
  }

  /** Sends it, with no options: a chain's result is its last step's, a chord's its callback's. */
  delay(this: Composite<[], R, Sent>): Promise<Sent> {
    return sendCanvas<R>(this) as Promise<Sent>;
  }
}

/** Steps run one after another, each receiving the previous result as its first argument. */
export class Chain<Missing extends unknown[], R> extends Composite<Missing, R, AsyncResult<R>> {
  readonly steps: readonly CanvasObject[];

  constructor(steps: readonly unknown[]) {
    super();
    if (steps.length === 0) throw new CanvasError('CANVAS_INVALID', 'a chain needs at least one step');
    this.steps = parts(steps, 'chain step');
  }

  protected get parts(): readonly CanvasObject[] {
    return this.steps;
  }

  [COMPILE](compiler: Compiler): Flow {
    return compiler.chain(this.steps);
  }

  /** Sends the chain: `options` apply to its first call; `link`/`linkError` as onSuccess/onError. */
  applyAsync(this: Chain<[], R>, options: ApplyOptions<R> = {}): Promise<AsyncResult<R>> {
    return sendCanvas<R>(this, options as ApplyOptions<never>);
  }

  /** The same chain, its first step with these options. */
  set(options: ApplyOptions<never>): Chain<Missing, R> {
    const [first, ...rest] = this.steps as [CanvasObject, ...CanvasObject[]];
    return new Chain([first.set(options), ...rest]);
  }

  /** `next` runs with the chain's result (its last step's) when the whole chain has succeeded. */
  onSuccess(next: Canvas<[R], unknown>): Chain<Missing, R> {
    const last = this.steps.at(-1) as CanvasObject;
    if (!last.onSuccess) {
      throw new CanvasError('CANVAS_INVALID', 'a chain that ends in a group has no single result to link: use a chord');
    }
    return new Chain([...this.steps.slice(0, -1), last.onSuccess(next as Canvas<[never], unknown>)]);
  }

  /** `errback` runs, once, with the failure of whichever step fails for good. */
  onError(errback: Canvas<[TaskFailure], unknown>): Chain<Missing, R> {
    return new Chain(this.steps.map((step) => step.onError(errback)));
  }
}

/** Members run in parallel, each given the same input; the result is the list of theirs, in order. */
export class Group<Missing extends unknown[], Rs> extends Composite<Missing, Rs, GroupResult<Rs>> {
  readonly members: readonly CanvasObject[];

  constructor(members: readonly unknown[]) {
    super();
    this.members = parts(members, 'group member');
  }

  protected get parts(): readonly CanvasObject[] {
    return this.members;
  }

  [COMPILE](compiler: Compiler): Flow {
    return compiler.group(this.members);
  }

  /** Sends every member: `options` apply to each member's first call. */
  applyAsync(
    this: Group<[], Rs>,
    options: Omit<ApplyOptions<never>, 'taskId' | 'link'> = {},
  ): Promise<GroupResult<Rs>> {
    return sendCanvas<Rs>(this, options) as Promise<GroupResult<Rs>>;
  }

  set(options: ApplyOptions<never>): Group<Missing, Rs> {
    if (options.taskId !== undefined) {
      throw new CanvasError('CANVAS_INVALID', 'taskId names one call: set it on a member signature, not on a group');
    }
    return new Group(this.members.map((member) => member.set(options)));
  }

  /** `errback` runs for each member that fails for good. */
  onError(errback: Canvas<[TaskFailure], unknown>): Group<Missing, Rs> {
    return new Group(this.members.map((member) => member.onError(errback)));
  }
}

/**
 * A group whose results, in order, become the first argument of a callback, enqueued exactly once
 * when every member has finished. Its result is the callback's.
 */
export class Chord<Missing extends unknown[], R> extends Composite<Missing, R, AsyncResult<R>> {
  readonly header: readonly CanvasObject[];
  readonly body: CanvasObject;

  constructor(header: readonly unknown[], body: unknown) {
    super();
    if (header.length === 0) throw emptyChord();
    this.header = parts(header, 'chord member');
    [this.body] = parts([body], 'chord callback') as [CanvasObject];
    if (body instanceof Group || body instanceof Chord) {
      throw new CanvasError(
        'CANVAS_INVALID',
        "a chord's callback must be a task signature (or a chain that starts with one), not a group or a chord",
      );
    }
  }

  protected get parts(): readonly CanvasObject[] {
    return [...this.header, this.body];
  }

  [COMPILE](compiler: Compiler): Flow {
    return compiler.chord(this.header, this.body);
  }

  /** Sends the chord: `options` apply to each member's first call, except `taskId`: the chord's (its callback's) id. */
  applyAsync(this: Chord<[], R>, options: ApplyOptions<R> = {}): Promise<AsyncResult<R>> {
    return sendCanvas<R>(this, options as ApplyOptions<never>);
  }

  set(options: ApplyOptions<never>): Chord<Missing, R> {
    const { taskId, ...rest } = options;
    const header = Object.keys(rest).length > 0 ? this.header.map((member) => member.set(rest)) : this.header;
    return new Chord(header, taskId === undefined ? this.body : this.body.set({ taskId }));
  }

  /** `next` runs with the callback's result. */
  onSuccess(next: Canvas<[R], unknown>): Chord<Missing, R> {
    if (!this.body.onSuccess) throw new CanvasError('CANVAS_INVALID', 'this callback cannot take a link');
    return new Chord(this.header, this.body.onSuccess(next as Canvas<[never], unknown>));
  }

  /** `errback` runs once if the chord fails (a member failed for good), or if its callback does. */
  onError(errback: Canvas<[TaskFailure], unknown>): Chord<Missing, R> {
    return new Chord(this.header, this.body.onError(errback));
  }
}

/**
 * Runs steps one after another, each receiving the previous result as its first argument:
 * `chain(processPayment.s(123), sendReceipt.s(), updateInventory.s())`. A step whose input does not
 * match the previous step's output is a type error. A failed step fails the rest of the chain.
 * Steps may be groups and chords: a group followed by a step becomes a chord (as in Celery).
 */
export function chain<M extends unknown[], R1>(a: Canvas<M, R1>): Chain<M, R1>;
export function chain<M extends unknown[], R1, R2>(a: Canvas<M, R1>, b: Canvas<[NoInfer<R1>], R2>): Chain<M, R2>;
export function chain<M extends unknown[], R1, R2, R3>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
): Chain<M, R3>;
export function chain<M extends unknown[], R1, R2, R3, R4>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
  d: Canvas<[NoInfer<R3>], R4>,
): Chain<M, R4>;
export function chain<M extends unknown[], R1, R2, R3, R4, R5>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
  d: Canvas<[NoInfer<R3>], R4>,
  e: Canvas<[NoInfer<R4>], R5>,
): Chain<M, R5>;
export function chain<M extends unknown[], R1, R2, R3, R4, R5, R6>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
  d: Canvas<[NoInfer<R3>], R4>,
  e: Canvas<[NoInfer<R4>], R5>,
  f: Canvas<[NoInfer<R5>], R6>,
): Chain<M, R6>;
export function chain<M extends unknown[], R1, R2, R3, R4, R5, R6, R7>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
  d: Canvas<[NoInfer<R3>], R4>,
  e: Canvas<[NoInfer<R4>], R5>,
  f: Canvas<[NoInfer<R5>], R6>,
  g: Canvas<[NoInfer<R6>], R7>,
): Chain<M, R7>;
export function chain<M extends unknown[], R1, R2, R3, R4, R5, R6, R7, R8>(
  a: Canvas<M, R1>,
  b: Canvas<[NoInfer<R1>], R2>,
  c: Canvas<[NoInfer<R2>], R3>,
  d: Canvas<[NoInfer<R3>], R4>,
  e: Canvas<[NoInfer<R4>], R5>,
  f: Canvas<[NoInfer<R5>], R6>,
  g: Canvas<[NoInfer<R6>], R7>,
  h: Canvas<[NoInfer<R7>], R8>,
): Chain<M, R8>;
export function chain(...steps: AnyCanvas[]): Chain<unknown[], unknown> {
  return new Chain(steps);
}

/**
 * Members run in parallel: `group(resize.s(a), resize.s(b))`, or `group(images.map((i) => resize.s(i)))`.
 * `delay()` returns a GroupResult whose `get()` gives their results in this order.
 */
export function group<const T extends readonly AnyCanvas[]>(members: T): Group<GroupInput<T>, OutputsOf<T>>;
export function group<T extends readonly AnyCanvas[]>(...members: T): Group<GroupInput<T>, OutputsOf<T>>;
export function group(...members: unknown[]): Group<never, unknown> {
  const list = members.length === 1 && Array.isArray(members[0]) ? (members[0] as unknown[]) : members;
  return new Group(list);
}

/**
 * Runs `callback` with the list of the header's results, in order, once every member has finished:
 * `chord(group(a.s(1), b.s(2)), total.s())` or `chord([a.s(1), b.s(2)], total.s())`. The callback's
 * first parameter must accept that list (a type error otherwise). The callback is enqueued exactly
 * once, whatever members retry or are redelivered; a member that fails for good fails the chord.
 */
export function chord<M extends unknown[], Rs, R>(
  header: Group<M, Rs>,
  callback: Canvas<[NoInfer<Rs>], R>,
): Chord<M, R>;
export function chord<const T extends readonly AnyCanvas[], R>(
  header: T,
  callback: Canvas<[NoInfer<OutputsOf<T>>], R>,
): Chord<GroupInput<T>, R>;
export function chord(header: unknown, callback: unknown): Chord<unknown[], unknown> {
  return new Chord(header instanceof Group ? header.members : (header as readonly unknown[]), callback);
}
