import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Taskfleet } from '../app.ts';
import { chain, chord, group } from '../canvas.ts';
import type { TaskfleetError } from '../errors.ts';
import { type ChordSpec, type Flow, isChord, type SignatureSpec } from '../message/canvas-spec.ts';
import { type Compilable, Compiler } from './compile.ts';
import { plan } from './launch.ts';

// Never connects: compiling and planning touch no broker.
const app = new Taskfleet({ broker: 'redis://127.0.0.1:1', defaultQueue: 'main' });
const a = app.task('a', (_ctx, n: number) => n);
const step = app.task('step', (_ctx, n: number) => n);
const urgent = app.task('urgent', { queue: 'fast', priority: 1 }, (_ctx, n: number) => n);
const cb = app.task('cb', { queue: 'callbacks' }, (_ctx, values: unknown[]) => values.length);

const compile = (canvas: unknown): Flow => new Compiler(app).root(canvas as Compilable);
const task = (node: unknown) => node as SignatureSpec;
const code = (expected: string) => (error: TaskfleetError) => {
  assert.equal(error.code, expected, error.message);
  return true;
};

describe('compile', () => {
  test('a signature: id fixed in advance, queue and priority resolved from the task, arguments kept', () => {
    const [node] = compile(urgent.s(7).set({ countdown: 50, headers: { h: 'v' } }));
    assert.match(task(node).id as string, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      { ...task(node), id: undefined },
      {
        id: undefined,
        task: 'urgent',
        args: [7],
        queue: 'fast',
        options: { priority: 1, countdown: 50, headers: { h: 'v' } },
      },
    );
  });

  test("a chord's slots: the call that ends each member's flow, nested groups flattened into a shape", () => {
    const [node] = compile(chord(group(chain(a.s(1), step.s()), group(a.s(2), a.s(3)), a.s(4)), cb.s()));
    assert.ok(node && isChord(node));
    assert.equal(node.size, 4);
    assert.equal(node.shape, '[#,[#,#],#]');
    const [first, nested, last] = node.header as [Flow, Flow, Flow];
    assert.equal(task(first[0]).chord, undefined, 'a chain step that is not the last fills no slot');
    const slot = (n: unknown) => task(n).chord;
    assert.deepEqual(slot(first[1]), { id: node.id, index: 0, queue: 'callbacks' });
    const members = (nested[0] as { members: Flow[] }).members;
    assert.deepEqual(
      members.map((m) => slot(m[0])?.index),
      [1, 2],
    );
    assert.deepEqual(slot(last[0]), { id: node.id, index: 3, queue: 'callbacks' });
    assert.equal(node.id, task(node.body[0]).id, "the chord's id is its callback's");
    assert.equal(task(node.body[0]).chord, undefined, "a top-level chord's callback fills no slot");
  });

  test('a flat chord has no shape; a chord in a chord fills one slot of the outer one with its callback', () => {
    const [outer] = compile(chord([chord([a.s(1), a.s(2)], cb.s()), a.s(3)], cb.s())) as [ChordSpec];
    assert.equal(outer.size, 2);
    assert.equal(outer.shape, undefined);
    const inner = (outer.header[0] as Flow)[0] as ChordSpec;
    assert.equal(inner.size, 2);
    assert.deepEqual(task(inner.body[0]).chord, { id: outer.id, index: 0, queue: 'callbacks' });
    assert.equal(task((inner.header[0] as Flow)[0]).chord?.id, inner.id);
  });

  test('in a chain, a group followed by steps becomes a chord; steps after a chord follow its callback', () => {
    const flow = compile(chain(a.s(1), group(step.s(), step.s()), cb.s(), step.s()));
    assert.equal(flow.length, 2);
    const made = flow[1] as ChordSpec;
    assert.ok(isChord(made));
    assert.deepEqual(
      made.body.map((n) => task(n).task),
      ['cb', 'step'],
    );
    const after = compile(chain(a.s(1), chord([step.s()], cb.s()), step.s()));
    assert.deepEqual(
      (after[1] as ChordSpec).body.map((n) => task(n).task),
      ['cb', 'step'],
    );
  });

  test('links are flows of their own: their chords are numbered apart from the one they are in', () => {
    const [outer] = compile(chord([a.s(1).onSuccess(chord([step.s()], cb.s()))], cb.s())) as [ChordSpec];
    const member = task((outer.header[0] as Flow)[0]);
    assert.equal(member.chord?.index, 0);
    const linked = (member.link as Flow[])[0]?.[0] as ChordSpec;
    assert.equal(linked.size, 1);
    assert.equal(task((linked.header[0] as Flow)[0]).chord?.id, linked.id);
    assert.equal(task(linked.body[0]).chord, undefined, 'a linked chord belongs to no outer chord');
  });

  test('refuses, naming the problem: empty chords, group after group, chord callback timing, depth, size', () => {
    assert.throws(() => chord([], cb.s()), code('EMPTY_CHORD'));
    assert.throws(() => compile(chain(a.s(1), group() as never, cb.s() as never)), code('EMPTY_CHORD'));
    assert.throws(
      () => compile(chain(a.s(1), group(step.s()), group(step.s()) as never)),
      /a group must be followed by a task/,
    );
    assert.throws(() => compile(chord([a.s(1)], cb.s().set({ eta: Date.now() }))), /not supported on it/);
    let deep: Compilable = a.s(1) as unknown as Compilable;
    for (let i = 0; i < 40; i++) deep = group(deep as never) as unknown as Compilable;
    assert.throws(() => compile(deep), code('CANVAS_TOO_DEEP'));
    assert.throws(() => compile(group(Array.from({ length: 10_001 }, () => a.s(1)))), code('CANVAS_TOO_LARGE'));
    assert.throws(() => compile(app.signature('missing')), code('UNKNOWN_TASK'));
    assert.throws(() => compile(a.s(1).set({ priority: 12 })), /priority must be an integer from 0/);
  });
});

describe('plan', () => {
  test('a chord: its callback (without input) to open, each member started with the input', () => {
    const flow = compile(chain(a.s(1), chord(group(step.s(), urgent.s()), cb.s())));
    const launch = plan(flow.slice(1), { input: { value: 5 }, queue: 'main', chordTtlMs: 1000, now: 0, rootId: 'r' });
    assert.equal(launch.chords.length, 1);
    const [opening] = launch.chords;
    assert.deepEqual(opening?.callback.args, [], 'the results list is put in when the chord completes');
    assert.equal(opening?.callback.queue, 'callbacks');
    assert.equal(opening?.size, 2);
    assert.deepEqual(
      launch.envelopes.map((e) => [e.task, e.args, e.queue, e.priority, e.groupId === opening?.id, e.chord?.index]),
      [
        ['step', [5], 'main', 5, true, 0],
        ['urgent', [5], 'fast', 1, true, 1],
      ],
    );
    assert.ok(launch.envelopes.every((e) => e.rootId === 'r'));
  });

  test('a workflow started here is rooted at its first call, or at the group or chord it starts with', () => {
    const context = { queue: 'main', chordTtlMs: 1000, now: 0 };
    const [callFirst] = plan(compile(chain(a.s(1), step.s())), context).envelopes;
    assert.equal(callFirst?.rootId, callFirst?.id);
    const flow = compile(chord(group(step.s(1), step.s(2)), cb.s()));
    const launch = plan(flow, context);
    const id = (flow[0] as ChordSpec).id;
    assert.deepEqual(
      [...launch.envelopes, ...launch.chords.map((c) => c.callback)].map((e) => e.rootId),
      [id, id, id],
      'the members and the callback share the id the chord’s handle has',
    );
    const grouped = compile(group(step.s(1), step.s(2)));
    assert.ok(plan(grouped, context).envelopes.every((e) => e.rootId === (grouped[0] as { id: string }).id));
  });
});
