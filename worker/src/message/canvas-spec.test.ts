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

  test('checks every part a worker will build a message from: queue names, options, chord slots and shapes', () => {
    const step = (extra: Record<string, unknown>) => [{ task: 'a', args: [], ...extra }];
    const cases: [unknown, string][] = [
      [step({ options: { priority: 12 } }), 'chain[0].options.priority must be an integer from 0 to 9'],
      [step({ options: { priority: 2.5 } }), 'chain[0].options.priority must be an integer from 0 to 9'],
      [step({ options: { maxRetries: -1 } }), 'chain[0].options.maxRetries must be an integer ≥ 0'],
      [step({ options: { countdown: 'soon' } }), 'chain[0].options.countdown must be a number of ms ≥ 0'],
      [step({ options: { expiresInMs: -5 } }), 'chain[0].options.expiresInMs must be a number of ms ≥ 0'],
      [step({ options: { eta: null } }), 'chain[0].options.eta must be a timestamp in ms'],
      [step({ options: { expiresAt: 'x' } }), 'chain[0].options.expiresAt must be a timestamp in ms'],
      [step({ options: { headers: { a: 1 } } }), 'chain[0].options.headers must be an object of strings'],
      [step({ options: [] }), 'chain[0].options must be an object'],
      [
        step({ queue: 'no spaces/or slashes' }),
        "chain[0].queue must be a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
      ],
      [step({ queue: 'q'.repeat(201) }), 'chain[0].queue must be a queue name'],
      [step({ chord: { id: 'c', index: 0, queue: '../../x' } }), 'chain[0].chord must be a chord slot'],
      [
        [{ kind: 'chord', id: 'c', size: 2, shape: '[#]', header: [[call('b')]], body: [call('c')] }],
        "chain[0].shape must be a list of size '#' slots, such as [#,[#,#]]",
      ],
      [
        [{ kind: 'chord', id: 'c', size: 1, shape: '[#]"x"', header: [[call('b')]], body: [call('c')] }],
        "chain[0].shape must be a list of size '#' slots",
      ],
      [
        [{ kind: 'chord', id: 'c', size: 1e9, header: [[call('b')]], body: [call('c')] }],
        'chain[0].size must be at most 10000',
      ],
      // Inside links, errbacks and chord members as well as steps.
      [
        [{ task: 'a', args: [], linkError: [step({ options: { priority: -1 } })] }],
        'chain[0].linkError[0][0].options.priority',
      ],
      [
        [{ kind: 'chord', id: 'c', size: 1, header: [[{ ...call('b'), queue: 'bad queue' }]], body: [call('c')] }],
        'chain[0].header[0][0].queue must be a queue name',
      ],
    ];
    for (const [flow, problem] of cases) {
      const problems = flowProblems(flow, 'chain');
      assert.equal(problems.length, 1, `${JSON.stringify(flow).slice(0, 120)}: ${problems.join('; ')}`);
      assert.ok(problems[0]?.startsWith(problem), `${problems[0]} should start with ${problem}`);
    }
    assert.deepEqual(flowProblems(step({ queue: 'ok.q:1-_', options: { priority: 0, countdown: 0 } }), 'chain'), []);
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
