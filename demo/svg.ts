/**
 * The demo's picture (docs/demo.svg), drawn by hand: the backlog on the left axis, ready and desired
 * replicas as step lines on the right axis, a dashed line at each scale event (the operator changed the
 * desired replicas) and a mark at each burst of tasks. No dependencies; the same run draws the same file.
 */

export interface ChartPoint {
  /** ms on the run's clock; the time axis spans the first point to the last. */
  t: number;
  backlog: number;
  ready: number;
  desired: number;
}

export interface ChartMark {
  t: number;
  label: string;
}

export interface ChartInput {
  title: string;
  /** One or two lines under the title. */
  subtitle: readonly string[];
  points: readonly ChartPoint[];
  /** Where the desired replicas changed, labelled `0 → 4`. */
  scaleEvents: readonly ChartMark[];
  /** Where tasks were sent, labelled `2,000 tasks`. */
  bursts: readonly ChartMark[];
  maxReplicas: number;
}

const W = 960;
const H = 480;
const plot = { left: 78, right: W - 66, top: 116, bottom: H - 62 };
const colors = {
  backlog: '#2563eb',
  backlogFill: '#dbeafe',
  ready: '#16a34a',
  desired: '#ea580c',
  grid: '#e5e7eb',
  axis: '#6b7280',
  text: '#111827',
  muted: '#4b5563',
  event: '#9ca3af',
};

export function timelineSvg(input: ChartInput): string {
  const { points } = input;
  const tMin = points[0]?.t ?? 0;
  const tMax = Math.max(tMin + 1000, ...points.map((p) => p.t));
  // Headroom above the peaks keeps the lines clear of the scale events' labels along the top.
  const backlogMax = niceCeiling(1.15 * Math.max(1, ...points.map((p) => p.backlog)));
  const replicaTop = Math.max(1, input.maxReplicas, ...points.map((p) => Math.max(p.ready, p.desired)));
  const replicaMax = replicaTop * 1.2;
  const x = (t: number) => plot.left + ((t - tMin) / (tMax - tMin)) * (plot.right - plot.left);
  const yBacklog = (v: number) => plot.bottom - (v / backlogMax) * (plot.bottom - plot.top);
  const yReplicas = (v: number) => plot.bottom - (v / replicaMax) * (plot.bottom - plot.top);
  const out: string[] = [];
  const add = (s: string) => out.push(s);

  add(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif" role="img" aria-labelledby="title desc">`,
  );
  add(`<title id="title">${esc(input.title)}</title>`);
  add(
    `<desc id="desc">${esc(`Backlog and worker replicas over time. ${input.subtitle.join('. ')}. Scale events: ${input.scaleEvents.map((e) => `${seconds(e.t)} ${e.label}`).join(', ') || 'none'}.`)}</desc>`,
  );
  add(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  add(
    `<text x="${plot.left}" y="30" font-size="19" font-weight="600" fill="${colors.text}">${esc(input.title)}</text>`,
  );
  input.subtitle.slice(0, 2).forEach((line, i) => {
    add(`<text x="${plot.left}" y="${52 + i * 17}" font-size="13" fill="${colors.muted}">${esc(line)}</text>`);
  });

  // Legend
  const legend: [string, string, string][] = [
    ['backlog (tasks)', colors.backlog, ''],
    ['ready replicas', colors.ready, ''],
    ['desired replicas', colors.desired, '6 4'],
    ['scale event', colors.event, '3 3'],
  ];
  let lx = plot.left;
  for (const [name, color, dash] of legend) {
    add(
      `<line x1="${lx}" y1="92" x2="${lx + 22}" y2="92" stroke="${color}" stroke-width="${name.startsWith('scale') ? 1.5 : 2.5}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    add(`<text x="${lx + 28}" y="96" font-size="12" fill="${colors.muted}">${esc(name)}</text>`);
    lx += 28 + name.length * 6.6 + 26;
  }

  // Grid and axes: backlog ticks on the left, replica ticks on the right, time below.
  const backlogStep = backlogMax / 5;
  for (let i = 0; i <= 5; i++) {
    const v = backlogStep * i;
    const y = r(yBacklog(v));
    add(`<line x1="${plot.left}" y1="${y}" x2="${plot.right}" y2="${y}" stroke="${colors.grid}"/>`);
    add(
      `<text x="${plot.left - 8}" y="${y + 4}" font-size="11" text-anchor="end" fill="${colors.axis}">${thousands(v)}</text>`,
    );
  }
  const replicaStep = replicaTop <= 10 ? 1 : Math.ceil(replicaTop / 10);
  for (let v = 0; v <= replicaTop; v += replicaStep) {
    const y = r(yReplicas(v));
    add(`<text x="${plot.right + 8}" y="${y + 4}" font-size="11" fill="${colors.axis}">${v}</text>`);
  }
  const timeStep = [5, 10, 15, 20, 30, 60, 120, 300].find((s) => (tMax - tMin) / 1000 / s <= 10) ?? 600;
  for (let s = Math.ceil(tMin / 1000 / timeStep) * timeStep; s * 1000 <= tMax; s += timeStep) {
    const tx = r(x(s * 1000));
    add(`<line x1="${tx}" y1="${plot.bottom}" x2="${tx}" y2="${plot.bottom + 5}" stroke="${colors.axis}"/>`);
    add(
      `<text x="${tx}" y="${plot.bottom + 19}" font-size="11" text-anchor="middle" fill="${colors.axis}">${clock(s)}</text>`,
    );
  }
  add(`<line x1="${plot.left}" y1="${plot.bottom}" x2="${plot.right}" y2="${plot.bottom}" stroke="${colors.axis}"/>`);
  add(`<line x1="${plot.left}" y1="${plot.top}" x2="${plot.left}" y2="${plot.bottom}" stroke="${colors.axis}"/>`);
  add(`<line x1="${plot.right}" y1="${plot.top}" x2="${plot.right}" y2="${plot.bottom}" stroke="${colors.axis}"/>`);
  const midY = r((plot.top + plot.bottom) / 2);
  add(
    `<text transform="translate(22 ${midY}) rotate(-90)" font-size="12" text-anchor="middle" fill="${colors.backlog}">backlog (tasks waiting or running)</text>`,
  );
  add(
    `<text transform="translate(${W - 18} ${midY}) rotate(90)" font-size="12" text-anchor="middle" fill="${colors.ready}">worker replicas</text>`,
  );
  add(
    `<text x="${r((plot.left + plot.right) / 2)}" y="${H - 16}" font-size="12" text-anchor="middle" fill="${colors.axis}">time since the TaskQueue was applied (m:ss)</text>`,
  );

  // Scale events: a dashed line each, labels staggered over three rows so that close ones stay legible.
  const rowEnds = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  for (const event of input.scaleEvents) {
    const ex = r(x(event.t));
    add(
      `<line x1="${ex}" y1="${plot.top}" x2="${ex}" y2="${plot.bottom}" stroke="${colors.event}" stroke-width="1.5" stroke-dasharray="3 3"/>`,
    );
    const width = event.label.length * 6.4 + 6;
    // Right of the line, unless that would cross the right axis: then left of it.
    const left = ex + width > plot.right;
    const start = left ? ex - width : ex;
    let row = rowEnds.findIndex((end) => end < start);
    if (row === -1) row = rowEnds.indexOf(Math.min(...rowEnds));
    rowEnds[row] = start + width;
    add(
      `<text x="${left ? ex - 3 : ex + 3}" y="${plot.top + 13 + row * 14}" font-size="11"${left ? ' text-anchor="end"' : ''} fill="${colors.muted}">${esc(event.label)}</text>`,
    );
  }

  if (points.length > 0) {
    // Backlog: a filled area under a line.
    const line = points.map((p) => `${r(x(p.t))},${r(yBacklog(p.backlog))}`).join(' ');
    const first = points[0] as ChartPoint;
    const last = points.at(-1) as ChartPoint;
    add(
      `<polygon points="${r(x(first.t))},${plot.bottom} ${line} ${r(x(last.t))},${plot.bottom}" fill="${colors.backlogFill}" fill-opacity="0.8"/>`,
    );
    add(`<polyline points="${line}" fill="none" stroke="${colors.backlog}" stroke-width="2" stroke-linejoin="round"/>`);
    // Replicas: steps, as they change (a count holds until the next sample says otherwise).
    add(
      `<path d="${steps(points, (p) => p.desired, x, yReplicas)}" fill="none" stroke="${colors.desired}" stroke-width="2.5" stroke-dasharray="6 4"/>`,
    );
    add(
      `<path d="${steps(points, (p) => p.ready, x, yReplicas)}" fill="none" stroke="${colors.ready}" stroke-width="2.5"/>`,
    );
  }

  // Bursts: a triangle on the time axis and how many tasks.
  for (const burst of input.bursts) {
    const bx = r(x(burst.t));
    const by = plot.bottom;
    add(`<polygon points="${bx},${by - 9} ${bx - 6},${by + 1} ${bx + 6},${by + 1}" fill="${colors.backlog}"/>`);
    add(
      `<text x="${bx + 8}" y="${by - 4}" font-size="11" font-weight="600" fill="${colors.backlog}">${esc(burst.label)}</text>`,
    );
  }
  add('</svg>');
  return `${out.join('\n')}\n`;
}

function steps(
  points: readonly ChartPoint[],
  value: (p: ChartPoint) => number,
  x: (t: number) => number,
  y: (v: number) => number,
): string {
  let d = '';
  let previous: number | undefined;
  for (const p of points) {
    const v = value(p);
    if (previous === undefined) d += `M${r(x(p.t))},${r(y(v))}`;
    else if (v !== previous) d += ` H${r(x(p.t))} V${r(y(v))}`;
    previous = v;
  }
  const last = points.at(-1);
  if (last) d += ` H${r(x(last.t))}`;
  return d;
}

/** The next round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k) at or above `v`: five grid steps fall on round numbers. */
export function niceCeiling(v: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * magnitude >= v) return m * magnitude;
  return 10 * magnitude;
}

const r = (v: number) => Math.round(v * 10) / 10;
const thousands = (v: number) => Math.round(v).toLocaleString('en-US');
const clock = (s: number) => `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
