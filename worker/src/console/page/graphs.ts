/**
 * The overview's graphs, drawn by uPlot from the console's sampler: GET /api/queues/{queue}/series for
 * the points since the console started, then each `point` event of /api/events appended live.
 */
import uPlot from 'uplot';

/** One queue at one tick (the API's QueuePoint, with its time). */
export interface Point {
  at: number;
  ready: number;
  delayed: number;
  inFlight: number;
  deadLetters?: number;
  arrivalsPerSecond?: number;
  completionsPerSecond?: number;
  outcomesPerSecond: Record<string, number>;
  duration?: { p50: number; p90: number; p99: number };
  wait?: { p50: number; p90: number; p99: number };
  desiredReplicas?: number;
  readyReplicas?: number;
}

type Value = number | null;
const OUTCOMES = ['success', 'failure', 'retry', 'revoked'];

/** A chart's series: its label, colour, the scale it is drawn on, and how to read it from a point. */
interface Line {
  label: string;
  stroke: string;
  scale?: string;
  dash?: number[];
  value: (p: Point) => Value;
}

const other = (p: Point) =>
  Object.entries(p.outcomesPerSecond)
    .filter(([k]) => !OUTCOMES.includes(k))
    .reduce((sum, [, v]) => sum + v, 0);

const CHARTS: { id: string; title: string; unit: string; right?: string; lines: Line[] }[] = [
  {
    id: 'throughput',
    title: 'Throughput by outcome',
    unit: 'per second',
    lines: [
      { label: 'arrivals', stroke: '#8a94a6', dash: [4, 4], value: (p) => p.arrivalsPerSecond ?? null },
      { label: 'success', stroke: '#137333', value: (p) => p.outcomesPerSecond.success ?? 0 },
      { label: 'failure', stroke: '#b3261e', value: (p) => p.outcomesPerSecond.failure ?? 0 },
      { label: 'retry', stroke: '#5b3fb3', value: (p) => p.outcomesPerSecond.retry ?? 0 },
      { label: 'revoked', stroke: '#7a5b00', value: (p) => p.outcomesPerSecond.revoked ?? 0 },
      { label: 'dead letter', stroke: '#e37400', value: other },
    ],
  },
  {
    id: 'backlog',
    title: 'Backlog and replicas',
    unit: 'tasks',
    right: 'replicas',
    lines: [
      { label: 'ready', stroke: '#1a73e8', value: (p) => p.ready },
      { label: 'delayed', stroke: '#8a94a6', value: (p) => p.delayed },
      { label: 'in flight', stroke: '#12a4af', value: (p) => p.inFlight },
      { label: 'dead letters', stroke: '#e37400', value: (p) => p.deadLetters ?? null },
      {
        label: 'desired replicas',
        stroke: '#1d2330',
        scale: 'replicas',
        dash: [6, 3],
        value: (p) => p.desiredReplicas ?? null,
      },
      { label: 'ready replicas', stroke: '#1d2330', scale: 'replicas', value: (p) => p.readyReplicas ?? null },
    ],
  },
  {
    id: 'latency',
    title: 'Duration and queue wait',
    unit: 'ms',
    lines: [
      { label: 'duration p50', stroke: '#137333', value: (p) => p.duration?.p50 ?? null },
      { label: 'duration p90', stroke: '#1a73e8', value: (p) => p.duration?.p90 ?? null },
      { label: 'duration p99', stroke: '#5b3fb3', value: (p) => p.duration?.p99 ?? null },
      { label: 'wait p50', stroke: '#e37400', dash: [4, 4], value: (p) => p.wait?.p50 ?? null },
      { label: 'wait p99', stroke: '#b3261e', dash: [4, 4], value: (p) => p.wait?.p99 ?? null },
    ],
  },
];

export class Graphs {
  readonly root: HTMLElement;
  readonly queue: string;
  readonly #capacity: number;
  readonly #charts: { box: HTMLElement; plot: uPlot; lines: Line[]; data: Value[][] }[] = [];
  readonly #resize = () => this.#fit();

  constructor(root: HTMLElement, queue: string, points: Point[], capacity: number) {
    this.root = root;
    this.queue = queue;
    this.#capacity = capacity;
    // Every cell first, then the charts: each is as wide as its cell once all three share the row.
    const boxes = CHARTS.map((chart) => {
      const box = document.createElement('div');
      box.className = 'graph';
      box.dataset.testid = `graph-${chart.id}`;
      return box;
    });
    root.append(...boxes);
    CHARTS.forEach((chart, n) => {
      const box = boxes[n] as HTMLElement;
      const axes: uPlot.Axis[] = [{}, { label: chart.unit, size: 60 }];
      const scales: uPlot.Scales = { x: { time: true } };
      if (chart.right) {
        axes.push({ scale: chart.right, side: 1, label: chart.right, grid: { show: false }, size: 50 });
        scales[chart.right] = { range: (_u, _min, max) => [0, Math.max(1, max)] };
      }
      const plot = new uPlot(
        {
          title: chart.title,
          width: widthOf(box),
          height: 200,
          legend: { live: false },
          scales,
          axes,
          series: [
            {},
            ...chart.lines.map((l) => ({
              label: l.label,
              stroke: l.stroke,
              width: 1.5,
              ...(l.scale ? { scale: l.scale } : {}),
              ...(l.dash ? { dash: l.dash } : {}),
            })),
          ],
        },
        undefined,
        box,
      );
      const data = [[], ...chart.lines.map(() => [])] as Value[][];
      this.#charts.push({ box, plot, lines: chart.lines, data });
    });
    for (const p of points) this.#append(p);
    this.#draw();
    window.addEventListener('resize', this.#resize);
  }

  /** Appends a tick's point (dropping the oldest beyond the console's capacity) and redraws. */
  add(point: Point): void {
    this.#append(point);
    this.#draw();
  }

  /** How many points are drawn. */
  get size(): number {
    return this.#charts[0]?.data[0]?.length ?? 0;
  }

  destroy(): void {
    window.removeEventListener('resize', this.#resize);
    for (const { plot } of this.#charts) plot.destroy();
  }

  #append(point: Point): void {
    for (const { lines, data } of this.#charts) {
      (data[0] as Value[]).push(point.at / 1000);
      lines.forEach((line, i) => {
        (data[i + 1] as Value[]).push(line.value(point));
      });
      if ((data[0] as Value[]).length > this.#capacity) for (const column of data) column.shift();
    }
  }

  #draw(): void {
    for (const { box, plot, lines, data } of this.#charts) {
      plot.setData(data as uPlot.AlignedData);
      // What is drawn, for people's tools and the tests: the points, and each line's highest value.
      box.dataset.points = String(data[0]?.length ?? 0);
      const peaks = lines.map((l, i) => [l.label, Math.max(0, ...(data[i + 1] ?? []).filter((v) => v !== null))]);
      box.dataset.peaks = JSON.stringify(Object.fromEntries(peaks));
    }
  }

  #fit(): void {
    for (const { box, plot } of this.#charts) plot.setSize({ width: widthOf(box), height: 200 });
  }
}

/** A chart fills its grid cell (the stylesheet lays the three out side by side when there is room). */
const widthOf = (box: HTMLElement) => Math.max(280, (box.clientWidth || 420) - 8);
