import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Flow, flowProblems, MAX_CANVAS_DEPTH, outerChordSlots, tasksOf } from './canvas-spec.ts';

const call = (task: string, chord?: { id: string; index: number }) => ({
  id: `${task}-id`,
  task,
  args: [],
  queue: 'q',
  ...(chord ? { chord: { ...chord, queue: 'q' } } : {}),
});

describe('flowProblems', () => {
  test('accepts what the compiler writes', () => {
    const flow: Flow = [
      call('a'),
      {
        kind: 'chord',
        id: 'c',
        size: 2,
        header: [[call('b', { id: 'c', index: 0 })], [{ kind: 'group', id: 'g', members: [[call('d')]] }]],
        body: [call('c'), call('e')],
        shape: '[#,[#]]',
      },
    ];
    assert.deepEqual(flowProblems(flow, 'chain'), []);
  });

  test(`refuses nesting deeper than ${MAX_CANVAS_DEPTH}, without recursion, however deep the message`, () => {
    let flow: unknown = [call('x')];
    for (let i = 0; i < 100_000; i++) flow = [{ kind: 'group', id: 'g', members: [flow] }];
    assert.deepEqual(flowProblems(flow, 'chain'), [`chain is nested more than ${MAX_CANVAS_DEPTH} deep`]);
  });

  test('names what is wrong', () => {
    assert.deepEqual(flowProblems([{ kind: 'chord', id: 'c', size: 0, header: [], body: [] }], 'link[0]'), [
      'link[0][0].size must be ≥ 1',
      'link[0][0].header must be a non-empty array of flows',
      'link[0][0].body must be a flow that starts with a task',
    ]);
    assert.deepEqual(flowProblems([{ task: 'a', args: [], chord: { id: 'c', index: 'x' } }], 'chain'), [
      'chain[0].chord must be a chord slot',
    ]);
  });
});

describe('outerChordSlots', () => {
  test('the slots of chords outside the flow, once per chord; not those of chords inside it', () => {
    const flow: Flow = [
      call('a'),
      {
        kind: 'chord',
        id: 'inner',
        size: 1,
        header: [[call('b', { id: 'inner', index: 0 })]],
        body: [call('c', { id: 'outer', index: 3 })],
      },
    ];
    assert.deepEqual(outerChordSlots(flow), [{ id: 'outer', index: 3, queue: 'q' }]);
    assert.deepEqual(
      tasksOf(flow).map((t) => t.task),
      ['a', 'b', 'c'],
    );
  });
});
