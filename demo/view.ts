/**
 * The demo's live view. On a terminal it redraws one compact frame in place (ANSI escapes): the backlog,
 * the rates, desired and ready replicas, sparklines of the whole run so far, the worker pods and the last
 * few events. Anywhere else (`make demo | cat`, a CI log) it prints events as they happen and a status
 * line every couple of seconds, so the log reads top to bottom.
 */
import type { FleetSample, WorkerPod } from '../test/stack/taskqueue.ts';

/** Everything a frame shows. */
export interface Snapshot {
  /** ms since the fleet was ready (the clock of the events, the chart and the summary). */
  elapsedMs: number;
  /** Where the demo runs, one line. */
  where: string;
  /** namespace/name of the TaskQueue and its scaling settings, one line. */
  queue: string;
  settings: string;
  /** What the demo is doing now. */
  phase: string;
  sample: FleetSample | undefined;
  pods: readonly WorkerPod[];
  /** The run so far, one point per sample. */
  history: readonly { backlog: number; ready: number; desired: number }[];
  maxReplicas: number;
  events: readonly DemoEvent[];
}

export interface DemoEvent {
  atMs: number;
  text: string;
}

const ESC = '\x1b[';
const PLAIN_EVERY_MS = 2000;
const PLAIN_QUIET_EVERY_MS = 10_000;

export class LiveView {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #color: boolean;
  #drawn = 0;
  #lastPlain = { at: -Infinity, text: '' };
  #printedEvents = 0;
  #resized = false;
  readonly #onResize = () => {
    this.#resized = true;
  };

  /** `tty` forces the mode (tests); colors follow NO_COLOR. */
  constructor(out: NodeJS.WriteStream, tty: boolean = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
    this.#color = tty && !process.env.NO_COLOR;
    if (this.#tty) {
      this.#out.write(`${ESC}?25l`); // the cursor would blink all over the frame
      this.#out.on('resize', this.#onResize);
    }
  }

  get tty(): boolean {
    return this.#tty;
  }

  update(snapshot: Snapshot): void {
    if (this.#tty) this.#draw(snapshot);
    else this.#plain(snapshot);
  }

  /** Leaves the last frame on screen (a terminal) and gives the cursor back. Safe to call twice. */
  close(): void {
    if (!this.#tty) return;
    this.#out.off('resize', this.#onResize);
    this.#out.write(`${ESC}?25h`);
  }

  #draw(snapshot: Snapshot): void {
    const columns = this.#out.columns || 100;
    const rows = this.#out.rows || 40;
    // One column spare: a line that fills the last column leaves some terminals wrapping on the newline.
    const lines = frame(snapshot, Math.min(columns - 1, 110), rows - 1, this.#color);
    let text = '';
    if (this.#resized) {
      // Lines drawn at the old width may have wrapped: start over on a clean screen.
      text += `${ESC}2J${ESC}H`;
      this.#resized = false;
    } else if (this.#drawn > 0) {
      text += `${ESC}${this.#drawn}F`;
    }
    for (const line of lines) text += `${line}${ESC}K\n`;
    text += `${ESC}J`;
    this.#out.write(text);
    this.#drawn = lines.length;
  }

  #plain(snapshot: Snapshot): void {
    for (const event of snapshot.events.slice(this.#printedEvents)) {
      this.#out.write(`[${clock(event.atMs)}] ${event.text}\n`);
    }
    this.#printedEvents = snapshot.events.length;
    if (!snapshot.sample) return;
    const text = statusLine(snapshot.sample, snapshot.pods);
    const since = snapshot.elapsedMs - this.#lastPlain.at;
    const changed = text !== this.#lastPlain.text;
    if ((changed && since >= PLAIN_EVERY_MS) || since >= PLAIN_QUIET_EVERY_MS) {
      this.#out.write(`[${clock(snapshot.elapsedMs)}] ${text}\n`);
      this.#lastPlain = { at: snapshot.elapsedMs, text };
    }
  }
}

/** The status in one line: what the plain view prints every couple of seconds. */
export function statusLine(s: FleetSample, pods: readonly WorkerPod[]): string {
  return [
    `backlog ${count(backlogOf(s))} (ready ${count(s.ready)}, delayed ${count(s.delayed)}, in flight ${count(s.inFlight)})`,
    `arrival ${rate(s.arrival)} · completion ${rate(s.completion)}`,
    `replicas desired ${s.desired}, ready ${s.readyReplicas}`,
    `pods ${pods.length === 0 ? '0' : `${pods.length}: ${podCounts(pods)}`}`,
  ].join(' · ');
}

/** The terminal frame: at most `height` lines of at most `width` visible characters. */
export function frame(s: Snapshot, width: number, height: number, color: boolean): string[] {
  const paint = (code: string, text: string) => (color ? `${ESC}${code}m${text}${ESC}0m` : text);
  const dim = (text: string) => paint('2', text);
  const bold = (text: string) => paint('1', text);
  const label = (text: string) => ` ${text.padEnd(10)}`;
  const sample = s.sample;
  const lines: string[] = [];
  const elapsed = `elapsed ${clock(s.elapsedMs)} `;
  const header = fit(` Taskfleet demo · ${s.where}`, width - elapsed.length - 1);
  lines.push(
    header.replace('Taskfleet demo', bold('Taskfleet demo')) + pad(header.length, width - elapsed.length) + elapsed,
  );
  lines.push(dim(fit(` TaskQueue ${s.queue} · ${s.settings}`, width)));
  lines.push('');
  lines.push(`${label('now')}${fit(s.phase, width - 11)}`);
  if (sample) {
    lines.push(
      `${label('backlog')}${paint('36', count(backlogOf(sample)))} ${dim(`(${count(sample.ready)} ready · ${count(sample.delayed)} delayed · ${count(sample.inFlight)} in flight)`)}`,
    );
    lines.push(`${label('rates')}arrival ${rate(sample.arrival)} · completion ${rate(sample.completion)}`);
    lines.push(
      `${label('replicas')}desired ${paint('33', String(sample.desired))} · ready ${paint('32', String(sample.readyReplicas))} ${dim(`(max ${s.maxReplicas})`)}`,
    );
  } else {
    lines.push(`${label('backlog')}${dim('waiting for the operator’s first status')}`, '', '');
  }
  lines.push('');
  const graphWidth = Math.max(10, width - 24);
  const peak = Math.max(0, ...s.history.map((h) => h.backlog));
  lines.push(
    `${label('backlog')}${paint(
      '36',
      sparkline(
        s.history.map((h) => h.backlog),
        peak,
        graphWidth,
      ),
    )} ${dim(`peak ${count(peak)}`)}`,
  );
  lines.push(
    `${label('ready')}${paint(
      '32',
      sparkline(
        s.history.map((h) => h.ready),
        s.maxReplicas,
        graphWidth,
      ),
    )} ${dim(`0–${s.maxReplicas}`)}`,
  );
  lines.push(
    `${label('desired')}${paint(
      '33',
      sparkline(
        s.history.map((h) => h.desired),
        s.maxReplicas,
        graphWidth,
      ),
    )} ${dim(`0–${s.maxReplicas}`)}`,
  );
  lines.push('');
  lines.push(` worker pods ${dim(s.pods.length === 0 ? '(none)' : `(${podCounts(s.pods)})`)}`);
  const cell = 22;
  const perLine = Math.max(1, Math.floor((width - 3) / cell));
  for (let i = 0; i < s.pods.length; i += perLine) {
    const row = s.pods.slice(i, i + perLine).map((pod) => {
      const text = `${podSymbol(pod.state)} ${shortPodName(pod.name)} ${pod.state}`;
      return paint(podColor(pod.state), text) + pad(text.length, cell);
    });
    lines.push(`   ${row.join('')}`.trimEnd());
  }
  lines.push('');
  for (const event of s.events.slice(-4)) lines.push(dim(fit(` ${clock(event.atMs)}  ${event.text}`, width)));
  lines.push(dim(' Ctrl-C stops the demo and everything it started.'));
  if (lines.length <= height) return lines;
  // A short terminal: keep the top (numbers) and the last line (how to stop), drop from the bottom up.
  return [...lines.slice(0, Math.max(1, height - 1)), lines.at(-1) as string];
}

const blocks = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/**
 * The whole series in `width` characters: each character the largest value of its slice of the series,
 * '·' for zero, so that 0 → N → 0 reads at a glance however long the run.
 */
export function sparkline(values: readonly number[], max: number, width: number): string {
  if (values.length === 0) return '';
  const columns = Math.min(width, values.length);
  let line = '';
  for (let c = 0; c < columns; c++) {
    const from = Math.floor((c * values.length) / columns);
    const to = Math.max(from + 1, Math.floor(((c + 1) * values.length) / columns));
    const value = Math.max(...values.slice(from, to));
    if (value <= 0 || max <= 0) line += '·';
    else line += blocks[Math.min(blocks.length - 1, Math.ceil((value / max) * blocks.length) - 1)];
  }
  return line;
}

export const backlogOf = (s: Pick<FleetSample, 'ready' | 'delayed' | 'inFlight'>) => s.ready + s.delayed + s.inFlight;

/** m:ss */
export function clock(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

export const count = (n: number) => Math.round(n).toLocaleString('en-US');
const rate = (n: number) => `${n.toFixed(1)}/s`;

function podCounts(pods: readonly WorkerPod[]): string {
  const by = new Map<string, number>();
  for (const pod of pods) by.set(pod.state, (by.get(pod.state) ?? 0) + 1);
  return [...by].map(([state, n]) => `${n} ${state}`).join(', ');
}

/** `thumbnails-workers-6b8c9d7f5-x2x4k` → `x2x4k`: the part that tells pods apart. */
function shortPodName(name: string): string {
  return name.split('-').at(-1) ?? name;
}

function podSymbol(state: string): string {
  return state === 'ready' ? '●' : state === 'starting' || state === 'pending' ? '◐' : '○';
}

function podColor(state: string): string {
  if (state === 'ready') return '32';
  if (state === 'starting' || state === 'pending') return '33';
  if (state === 'terminating') return '2';
  return '31'; // a waiting reason: CrashLoopBackOff, ImagePullBackOff…
}

/** Cuts text without escapes to `width` characters. */
function fit(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

function pad(length: number, width: number): string {
  return ' '.repeat(Math.max(0, width - length));
}
