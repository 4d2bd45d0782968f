import { type CanvasApp, COMPILE, type Compiler } from './canvas/compile.ts';
import { type CanvasObject, listOf, sendCanvas } from './canvas/send.ts';
import type { Flow } from './message/canvas-spec.ts';
import type { AsyncResult } from './result.ts';
import type {
  ApplyOptions,
  Canvas,
  Handler,
  Signature,
  Tail,
  TaskDefinition,
  TaskFailure,
  TaskOptions,
} from './task.ts';

/** What tasks and signatures need of their app: sending calls, and all a workflow needs. */
export interface TaskHost extends CanvasApp {
  send<R>(task: TaskDefinition, args: readonly unknown[], options: ApplyOptions, chain?: Flow): Promise<AsyncResult<R>>;
  sendBulk<R>(
    task: TaskDefinition,
    argsList: readonly (readonly unknown[])[],
    options: ApplyOptions,
  ): Promise<AsyncResult<R>[]>;
}

/**
 * A registered task: call it with `delay(...)` or `applyAsync(args, options)`, or make a signature
 * with `s(...)` for later or for a chain. Its argument and result types come from the handler.
 */
export class Task<A extends unknown[], R> implements TaskDefinition {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  readonly handler: Handler<unknown[], unknown>;
  readonly #app: TaskHost;

  constructor(app: TaskHost, name: string, options: TaskOptions, handler: Handler<A, R>) {
    this.#app = app;
    this.name = name;
    this.options = Object.freeze({ ...options });
    this.handler = handler as unknown as Handler<unknown[], unknown>;
  }

  /** Enqueues a call: `sendWelcomeEmail.delay('user@example.com')`. */
  delay(...args: A): Promise<AsyncResult<R>> {
    return this.#app.send<R>(this, args, {});
  }

  /**
   * Enqueues a call with options: countdown or eta, expires, priority, taskId, queue, headers, and
   * `link` / `linkError` (what runs with its result, or its failure).
   */
  applyAsync(args: A, options: ApplyOptions<R> = {}): Promise<AsyncResult<R>> {
    if (options.link !== undefined || options.linkError !== undefined) {
      return new TaskSignature<[], R>(this.#app, this.name, args, {}).applyAsync(options);
    }
    return this.#app.send<R>(this, args, options);
  }

  /**
   * Enqueues many calls in one round trip (BullMQ's addBulk): one argument list per call, the same
   * options for all. Every argument list is checked before anything is sent.
   */
  applyBulk(
    argsList: readonly A[],
    options: Omit<ApplyOptions, 'taskId' | 'link' | 'linkError'> = {},
  ): Promise<AsyncResult<R>[]> {
    return this.#app.sendBulk<R>(this, argsList, options);
  }

  /**
   * A signature: with every argument, a complete call; without the first, a chain step that receives
   * the previous step's result as its first argument.
   */
  s(...args: A): Signature<[], R>;
  s(...args: Tail<A>): Signature<[A[0]], R>;
  s(...args: unknown[]): Signature<unknown[], R> {
    return new TaskSignature(this.#app, this.name, args, {});
  }
}

export class TaskSignature<Missing extends unknown[], R> implements Signature<Missing, R>, CanvasObject {
  declare readonly __input?: (input: Missing) => void;
  declare readonly __output?: R;
  readonly task: string;
  readonly args: readonly unknown[];
  readonly options: Readonly<ApplyOptions<never>>;
  /** The app that sends it. */
  readonly app: TaskHost;

  constructor(app: TaskHost, task: string, args: readonly unknown[], options: ApplyOptions<never>) {
    this.app = app;
    this.task = task;
    this.args = args;
    this.options = options;
  }

  delay(this: Signature<[], R>): Promise<AsyncResult<R>> {
    return this.applyAsync();
  }

  applyAsync(this: Signature<[], R>, options: ApplyOptions<R> = {}): Promise<AsyncResult<R>> {
    const self = this as TaskSignature<[], R>;
    const merged = { ...self.options, ...options } as ApplyOptions<never>;
    const known = self.app.tasks.get(self.task);
    // A plain call of a known task takes the short way; links, and tasks only named (app.signature),
    // go through the canvas, which checks them and carries the links.
    if (known && merged.link === undefined && merged.linkError === undefined) {
      return self.app.send<R>(known, self.args, merged);
    }
    const { link, linkError, ...rest } = options as ApplyOptions<never>;
    return sendCanvas<R>(new TaskSignature(self.app, self.task, self.args, { ...self.options, ...rest }), {
      ...(link !== undefined ? { link } : {}),
      ...(linkError !== undefined ? { linkError } : {}),
    });
  }

  set(options: ApplyOptions<R>): TaskSignature<Missing, R> {
    return new TaskSignature(this.app, this.task, this.args, { ...this.options, ...(options as ApplyOptions<never>) });
  }

  onSuccess(next: Canvas<[R], unknown>): TaskSignature<Missing, R> {
    const link = [...listOf(this.options.link), next as Canvas<[never], unknown>];
    return new TaskSignature(this.app, this.task, this.args, { ...this.options, link });
  }

  onError(errback: Canvas<[TaskFailure], unknown>): TaskSignature<Missing, R> {
    const linkError = [...listOf(this.options.linkError), errback];
    return new TaskSignature(this.app, this.task, this.args, { ...this.options, linkError });
  }

  [COMPILE](compiler: Compiler): Flow {
    return compiler.task(this);
  }
}
