import type { Taskfleet } from './app.ts';
import type { AsyncResult } from './result.ts';
import type { ApplyOptions, Handler, Signature, Tail, TaskDefinition, TaskOptions } from './task.ts';

/**
 * A registered task: call it with `delay(...)` or `applyAsync(args, options)`, or make a signature
 * with `s(...)` for later or for a chain. Its argument and result types come from the handler.
 */
export class Task<A extends unknown[], R> implements TaskDefinition {
  readonly name: string;
  readonly options: Readonly<TaskOptions>;
  readonly handler: Handler<unknown[], unknown>;
  readonly #app: Taskfleet;

  constructor(app: Taskfleet, name: string, options: TaskOptions, handler: Handler<A, R>) {
    this.#app = app;
    this.name = name;
    this.options = Object.freeze({ ...options });
    this.handler = handler as unknown as Handler<unknown[], unknown>;
  }

  /** Enqueues a call: `sendWelcomeEmail.delay('user@example.com')`. */
  delay(...args: A): Promise<AsyncResult<R>> {
    return this.#app.send<R>(this, args, {});
  }

  /** Enqueues a call with options: countdown or eta, expires, priority, taskId, queue, headers. */
  applyAsync(args: A, options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    return this.#app.send<R>(this, args, options);
  }

  /**
   * Enqueues many calls in one round trip (BullMQ's addBulk): one argument list per call, the same
   * options for all. Every argument list is checked before anything is sent.
   */
  applyBulk(argsList: readonly A[], options: Omit<ApplyOptions, 'taskId'> = {}): Promise<AsyncResult<R>[]> {
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

export class TaskSignature<Missing extends unknown[], R> implements Signature<Missing, R> {
  readonly task: string;
  readonly args: readonly unknown[];
  readonly options: Readonly<ApplyOptions>;
  /** The app that sends it. */
  readonly app: Taskfleet;

  constructor(app: Taskfleet, task: string, args: readonly unknown[], options: ApplyOptions) {
    this.app = app;
    this.task = task;
    this.args = args;
    this.options = options;
  }

  delay(this: Signature<[], R>): Promise<AsyncResult<R>> {
    return this.applyAsync();
  }

  applyAsync(this: Signature<[], R>, options: ApplyOptions = {}): Promise<AsyncResult<R>> {
    const self = this as TaskSignature<[], R>;
    return self.app.send<R>(self.app.definition(self.task), self.args, { ...self.options, ...options });
  }

  set(options: ApplyOptions): Signature<Missing, R> {
    return new TaskSignature(this.app, this.task, this.args, { ...this.options, ...options });
  }
}
