import { randomUUID } from 'node:crypto';
import { ConfigError } from './errors.ts';
import type { SignatureSpec } from './message/envelope.ts';
import { TaskSignature } from './registered-task.ts';
import type { AsyncResult } from './result.ts';
import type { ApplyOptions, Signature } from './task.ts';

/** A chain ready to send: its result is the last step's. */
export interface Chain<R> {
  delay(): Promise<AsyncResult<R>>;
  applyAsync(options?: ApplyOptions): Promise<AsyncResult<R>>;
}

/**
 * Runs signatures one after another, each receiving the previous result as its first argument:
 * `chain(processPayment.s(123), sendReceipt.s(), updateInventory.s())`. A step whose input does not
 * match the previous step's output is a type error. A failed step fails the rest of the chain.
 */
export function chain<R1, R2>(a: Signature<[], R1>, b: Signature<[R1], R2>): Chain<R2>;
export function chain<R1, R2, R3>(a: Signature<[], R1>, b: Signature<[R1], R2>, c: Signature<[R2], R3>): Chain<R3>;
export function chain<R1, R2, R3, R4>(
  a: Signature<[], R1>,
  b: Signature<[R1], R2>,
  c: Signature<[R2], R3>,
  d: Signature<[R3], R4>,
): Chain<R4>;
export function chain<R1, R2, R3, R4, R5>(
  a: Signature<[], R1>,
  b: Signature<[R1], R2>,
  c: Signature<[R2], R3>,
  d: Signature<[R3], R4>,
  e: Signature<[R4], R5>,
): Chain<R5>;
export function chain(...steps: Signature<unknown[], unknown>[]): Chain<unknown> {
  if (steps.length === 0) throw new ConfigError('a chain needs at least one step');
  const [first, ...rest] = steps as TaskSignature<unknown[], unknown>[];
  if (!(first instanceof TaskSignature)) throw new ConfigError('chain() takes signatures made with task.s(...)');
  const { app } = first;
  const applyAsync = async (options: ApplyOptions = {}) => {
    const specs: SignatureSpec[] = rest.map((step) => ({
      id: randomUUID(),
      task: app.definition(step.task).name,
      args: step.args as SignatureSpec['args'],
      ...(step.options.queue !== undefined ? { queue: step.options.queue } : {}),
      ...(step.options.priority !== undefined || step.options.maxRetries !== undefined
        ? {
            options: {
              ...(step.options.priority !== undefined ? { priority: step.options.priority } : {}),
              ...(step.options.maxRetries !== undefined ? { maxRetries: step.options.maxRetries } : {}),
            },
          }
        : {}),
    }));
    const head = await app.send(app.definition(first.task), first.args, { ...first.options, ...options }, specs);
    const last = specs.at(-1);
    return last?.id ? app.result(last.id) : head;
  };
  return { delay: () => applyAsync(), applyAsync };
}
