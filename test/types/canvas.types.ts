/**
 * Type-level tests of the canvas: never run, only type-checked (`tsc --noEmit -p .`, part of
 * `make lint`). Each `@ts-expect-error` line must be a type error: if a change makes it compile,
 * the check fails with "Unused '@ts-expect-error' directive".
 */
import { type AsyncResult, chain, chord, type GroupResult, group, type TaskFailure, Taskfleet } from 'taskfleet';

const app = new Taskfleet({ broker: 'redis://127.0.0.1:6379' });
const add = app.task('add', (_ctx, a: number, b: number) => a + b);
const toText = app.task('to_text', (_ctx, n: number) => String(n));
const upper = app.task('upper', (_ctx, s: string) => s.toUpperCase());
const wide = app.task('wide', (_ctx, v: string | number) => v);
const total = app.task('total', (_ctx, values: readonly number[]) => values.reduce((a, b) => a + b, 0));
const numberAndText = app.task('number_and_text', (_ctx, [n, s]: [number, string]) => `${n}${s}`);
const twoNumbers = app.task('two_numbers', (_ctx, [a, b]: [number, number]) => a + b);
const anything = app.task('anything', (_ctx, value: unknown) => JSON.stringify(value));
const errback = app.task('errback', (_ctx, failure: TaskFailure) => failure.taskId);

export async function chains(): Promise<void> {
  const text: AsyncResult<string> = await chain(add.s(1, 2), toText.s()).delay();
  void text;
  // A step may take more than it is given.
  void chain(toText.s(1), wide.s());
  // @ts-expect-error to_text gives a string; add's first argument is a number
  void chain(toText.s(1), add.s(2));
  // @ts-expect-error a complete signature cannot be a later step: it would get one argument too many
  void chain(add.s(1, 2), add.s(3, 4));
  // @ts-expect-error a signature that still needs its first argument cannot be sent alone
  void toText.s().delay();
  // @ts-expect-error nor can a chain that starts with one
  void chain(toText.s(), upper.s()).delay();
}

export async function groups(): Promise<void> {
  const mixed: GroupResult<[number, string]> = await group(add.s(1, 2), toText.s(3)).delay();
  const [n, s]: [number, string] = await mixed.get();
  void [n, s];
  // @ts-expect-error the second member gives a string
  const [, wrong]: [number, number] = await mixed.get();
  void wrong;
  const many: number[] = await (await group([1, 2, 3].map((i) => add.s(i, i))).delay()).get();
  void many;
  // @ts-expect-error members that need input (a group as a chain step) cannot be sent alone
  void group(toText.s(), upper.s()).delay();
  // As a chain step, every member receives the previous result.
  void chain(add.s(1, 2), group(toText.s(), add.s(5)));
  // @ts-expect-error upper takes a string, but the step before gives a number
  void chain(add.s(1, 2), group(toText.s(), upper.s()));
  // @ts-expect-error to_text takes a number, but the step before gives a string
  void chain(toText.s(1), group(upper.s(), toText.s()));
  const yes = app.task('yes', (_ctx, flag: boolean) => !flag);
  void chain(app.task('flag', () => true).s(), group(yes.s(), yes.s()));
}

export async function chords(): Promise<void> {
  const sum: AsyncResult<number> = await chord(group(add.s(1, 2), add.s(3, 4)), total.s()).delay();
  void sum;
  void chord([add.s(1, 2), add.s(3, 4)], total.s());
  void chord(group([1, 2].map((i) => add.s(i, i))), total.s());
  void chord(group(add.s(1, 2), toText.s(3)), numberAndText.s());
  void chord(group(add.s(1, 2), add.s(3, 4)), twoNumbers.s());
  void chord(group(add.s(1, 2), toText.s(3)), anything.s());
  // @ts-expect-error the callback takes numbers, but the second member gives a string
  void chord(group(add.s(1, 2), toText.s(3)), total.s());
  // @ts-expect-error the same with the list form
  void chord([add.s(1, 2), toText.s(3)], total.s());
  // @ts-expect-error the callback must take the list as its first argument
  void chord([add.s(1, 2)], add.s(1, 2));
  // @ts-expect-error a callback of exactly two numbers cannot take a list of any length
  void chord(group([1, 2].map((i) => add.s(i, i))), twoNumbers.s());
  // @ts-expect-error the order matters: [string, number] is not [number, string]
  void chord([toText.s(3), add.s(1, 2)], numberAndText.s());
  // A chord as a chain step: the previous result goes to each member, the callback's to the next step.
  const inChain: AsyncResult<string> = await chain(
    add.s(1, 2),
    chord(group(add.s(5), toText.s()), numberAndText.s()),
    upper.s(),
  ).delay();
  void inChain;
  // @ts-expect-error the callback gives a number; upper takes a string
  void chain(add.s(1, 2), chord(group(add.s(5)), total.s()), upper.s());
  // Nested: a chain and a group inside a chord's header.
  void chord(group(chain(add.s(1, 1), toText.s()), group(add.s(1, 2), add.s(3, 4))), anything.s());
  const nested = app.task('nested', (_ctx, [s, [a, b]]: [string, [number, number]]) => `${s}${a + b}`);
  void chord(group(chain(add.s(1, 1), toText.s()), group(add.s(1, 2), add.s(3, 4))), nested.s());
  // @ts-expect-error the nested group gives [number, number], not a number
  void chord(group(chain(add.s(1, 1), toText.s()), add.s(1, 2)), nested.s());
}

export async function links(): Promise<void> {
  void add.s(1, 2).onSuccess(toText.s());
  // @ts-expect-error a link receives the result: a number, and upper takes a string
  void add.s(1, 2).onSuccess(upper.s());
  void add.s(1, 2).onError(errback.s());
  // @ts-expect-error an errback receives a TaskFailure
  void add.s(1, 2).onError(toText.s());
  await add.applyAsync([1, 2], { link: toText.s(), linkError: errback.s() });
  // @ts-expect-error links given as options are checked too
  await add.applyAsync([1, 2], { link: upper.s() });
  void chord([add.s(1, 2)], total.s())
    .onSuccess(toText.s())
    .onError(errback.s());
  // @ts-expect-error the chord's result is the callback's: a number
  void chord([add.s(1, 2)], total.s()).onSuccess(upper.s());
}
