/** The demo's drawing, without a cluster: the sparklines, the terminal frame and docs/demo.svg. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageValues } from './cluster.ts';
import { niceCeiling, timelineSvg } from './svg.ts';
import { frame, type Snapshot, sparkline, statusLine } from './view.ts';

test('a sparkline squeezes the whole run into its width and keeps each slice’s peak', () => {
  assert.equal(sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8], 8, 20), '·▁▂▃▄▅▆▇█');
  // 0 → N → 0 over 300 samples in 10 columns: the single peak sample still shows.
  const run = Array.from({ length: 300 }, (_, i) => (i === 151 ? 6 : i > 100 && i < 200 ? 3 : 0));
  const line = sparkline(run, 6, 10);
  assert.equal(line.length, 10);
  assert.equal(line, '···▄▄█▄···');
  assert.equal(sparkline([], 6, 10), '');
});

const snapshot: Snapshot = {
  elapsedMs: 83_000,
  where: 'local stack (Kubernetes v1.37.2, Redis 7.0.15)',
  queue: 'taskfleet-demo/thumbnails',
  settings: 'poll 1 s, 500 tasks per replica, max 6, scale-down window 10 s, to 0 after 10 s idle',
  phase: 'burst 2 of 2: the workers drain 4,000 tasks',
  sample: {
    ready: 1234,
    delayed: 0,
    inFlight: 24,
    arrival: 0,
    completion: 118.25,
    desired: 6,
    replicas: 6,
    readyReplicas: 5,
  },
  pods: ['ab1cd', 'ef2gh', 'ij3kl'].map((id, i) => ({
    name: `thumbnails-workers-6b8c9d7f5-${id}`,
    state: ['ready', 'starting', 'terminating'][i] as string,
    restarts: 0,
    createdAt: i,
  })),
  history: Array.from({ length: 200 }, (_, i) => ({ backlog: i * 20, ready: i % 7, desired: 6 })),
  maxReplicas: 6,
  events: Array.from({ length: 6 }, (_, i) => ({ atMs: i * 1000, text: `event ${i}` })),
};

test('the terminal frame fits the terminal: no line wider, no more lines, and the way out stays', () => {
  for (const [width, height] of [
    [110, 40],
    [80, 24],
    [60, 12],
  ] as const) {
    const lines = frame(snapshot, width, height, false);
    assert.ok(lines.length <= height, `${lines.length} lines for ${height}`);
    for (const line of lines) assert.ok(line.length <= width, `${line.length} > ${width}: ${line}`);
    assert.match(lines.at(-1) as string, /Ctrl-C stops the demo/);
  }
  const text = frame(snapshot, 100, 40, false).join('\n');
  assert.match(text, /backlog {3}1,258 \(1,234 ready · 0 delayed · 24 in flight\)/);
  assert.match(text, /completion 118\.3\/s/);
  assert.match(text, /desired 6 · ready 5/);
  assert.match(text, /● ab1cd ready {9}◐ ef2gh starting {6}○ ij3kl terminating/);
  assert.match(text, /1:23/);
  assert.doesNotMatch(text, /event 1/, 'only the last four events');
  assert.match(text, /event 5/);
  // Colour is escapes around the same text.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing the escapes
  const colored = frame(snapshot, 100, 40, true).map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''));
  assert.deepEqual(colored, frame(snapshot, 100, 40, false));
});

test('the plain status line says everything in one line', () => {
  assert.equal(
    statusLine(snapshot.sample!, snapshot.pods),
    'backlog 1,258 (ready 1,234, delayed 0, in flight 24) · arrival 0.0/s · completion 118.3/s · replicas desired 6, ready 5 · pods 3: 1 ready, 1 starting, 1 terminating',
  );
});

test('docs/demo.svg: axes from the data, steps for replicas, a line per scale event, text escaped', () => {
  const svg = timelineSvg({
    title: 'Bursts <&> "fleets"',
    subtitle: ['one', 'two'],
    points: [
      { t: 13_000, backlog: 0, ready: 0, desired: 0 },
      { t: 17_000, backlog: 2000, ready: 0, desired: 4 },
      { t: 19_000, backlog: 1900, ready: 4, desired: 4 },
      { t: 60_000, backlog: 0, ready: 0, desired: 0 },
    ],
    scaleEvents: [
      { t: 17_000, label: '0 → 4' },
      { t: 60_000, label: '4 → 0' },
    ],
    bursts: [{ t: 16_000, label: '2,000 tasks' }],
    maxReplicas: 6,
  });
  assert.match(svg, /<title id="title">Bursts &lt;&amp;&gt; &quot;fleets&quot;<\/title>/);
  // The time axis spans the data (0:13 to 1:00): ticks from 0:15, none at 0:00.
  assert.match(svg, />0:15<\/text>/);
  assert.doesNotMatch(svg, />0:00<\/text>/);
  // Backlog axis to a round number above the peak with headroom; replicas labelled 0–6.
  assert.match(svg, />2,500<\/text>/);
  assert.match(svg, /font-size="11" fill="#6b7280">6<\/text>/);
  assert.doesNotMatch(svg, /font-size="11" fill="#6b7280">7<\/text>/);
  assert.equal(svg.match(/stroke-dasharray="3 3"\/>/g)?.length, 3, 'two scale events and the legend');
  // Ready replicas: a step path (H then V), not a diagonal.
  const ready = /<path d="([^"]+)" fill="none" stroke="#16a34a"/.exec(svg)?.[1] ?? '';
  assert.match(ready, /^M[\d.]+,[\d.]+ H[\d.]+ V[\d.]+ H[\d.]+ V[\d.]+ H[\d.]+$/);
});

test('round numbers for the backlog axis', () => {
  assert.deepEqual([1, 7, 11, 1150, 2300, 4600, 6900].map(niceCeiling), [1, 8, 15, 1500, 2500, 5000, 8000]);
});

test('an operator image becomes the chart’s image values', () => {
  assert.deepEqual(imageValues('registry.example.com:5000/taskfleet-operator:0.1.0'), {
    'image.repository': 'registry.example.com:5000/taskfleet-operator',
    'image.tag': '0.1.0',
  });
  assert.deepEqual(imageValues('ghcr.io/taskfleet/taskfleet-operator@sha256:abc'), {
    'image.repository': 'ghcr.io/taskfleet/taskfleet-operator',
    'image.digest': 'sha256:abc',
  });
  assert.deepEqual(imageValues('localhost:5000/operator'), { 'image.repository': 'localhost:5000/operator' });
});
