/**
 * From signatures, chains, groups and chords as the user declares them to the workflow a message
 * carries (message/canvas-spec.ts): ids fixed in advance, queues and priorities resolved, every
 * argument checked, the caps on depth and size enforced, chords' slots numbered. Everything a worker
 * would otherwise find wrong later is refused here, at enqueue.
 */
import { randomUUID } from 'node:crypto';
import { CanvasError, ConfigError, EtaBeyondHorizonError } from '../errors.ts';
import {
  type ChordSpec,
  type Flow,
  type GroupSpec,
  isChord,
  isGroup,
  isTask,
  MAX_CANVAS_DEPTH,
  MAX_CANVAS_SIGNATURES,
  type SignatureSpec,
} from '../message/canvas-spec.ts';
import { assertJson, type JsonValue } from '../message/json.ts';
import { assertQueueName } from '../queue-name.ts';
import type { ResultCalls, ResultSource } from '../result.ts';
import type { ApplyOptions, TaskDefinition } from '../task.ts';
import type { Launch } from './launch.ts';

/** The method by which a canvas object (signature, chain, group, chord) becomes a flow. */
export const COMPILE: unique symbol = Symbol('taskfleet.canvas.compile');

/** What compiling a workflow reads of the app that sends it. */
export interface CompileContext {
  readonly defaultQueue: string;
  readonly etaHorizon: number;
  readonly tasks: ReadonlyMap<string, TaskDefinition>;
  /** The task of that name; throws (UNKNOWN_TASK) naming those it has. */
  definition(name: string): TaskDefinition;
}

/** What sending a workflow needs of its app: compiling it, starting it, and its result's handles. */
export interface CanvasApp extends CompileContext, ResultSource {
  readonly resultExpires: number;
  readonly producer: ResultCalls & { launch(launch: Launch): Promise<void> };
}

/** What every canvas object implements (internal). */
export interface Compilable {
  [COMPILE](compiler: Compiler): Flow;
  /** The app of the first signature inside, if any: the one that sends it. */
  readonly app: CanvasApp | undefined;
}

/** The parts of a task signature the compiler reads. */
export interface TaskParts {
  readonly task: string;
  readonly args: readonly unknown[];
  readonly options: Readonly<ApplyOptions<never>>;
}

/** One compilation: counts signatures and depth across the whole workflow, links included. */
export class Compiler {
  readonly app: CompileContext;
  #depth = 0;
  #signatures = 0;

  constructor(app: CompileContext) {
    this.app = app;
  }

  /** A complete workflow, or a link: its own chords numbered, its calls not part of any outer chord. */
  root(part: Compilable): Flow {
    const flow = this.flow(part);
    numberSlots(flow, undefined);
    return flow;
  }

  /** A part nested one level deeper than the caller. */
  flow(part: Compilable): Flow {
    if (++this.#depth > MAX_CANVAS_DEPTH) {
      throw new CanvasError(
        'CANVAS_TOO_DEEP',
        `this workflow nests chains, groups, chords and links more than ${MAX_CANVAS_DEPTH} deep: flatten it (a chain of chains is one chain)`,
      );
    }
    try {
      return part[COMPILE](this);
    } finally {
      this.#depth--;
    }
  }

  task(sig: TaskParts): Flow {
    if (++this.#signatures > MAX_CANVAS_SIGNATURES) {
      throw new CanvasError(
        'CANVAS_TOO_LARGE',
        `this workflow holds more than ${MAX_CANVAS_SIGNATURES} signatures: send it in parts (e.g. several chords, or applyBulk)`,
      );
    }
    const definition = this.app.tasks.get(sig.task);
    // An app that registers tasks knows them all: a name it lacks is a mistake, caught now. An app that
    // registers none is a producer only (see app.signature): it cannot tell, and the worker decides.
    if (!definition && this.app.tasks.size > 0) this.app.definition(sig.task);
    sig.args.forEach((arg, i) => {
      assertJson(arg, `argument ${i + 1} of ${sig.task}`);
    });
    const o = sig.options;
    const where = `task ${sig.task}`;
    const queue = o.queue ?? definition?.options.queue ?? this.app.defaultQueue;
    assertQueueName(queue);
    const options: NonNullable<SignatureSpec['options']> = {};
    const priority = o.priority ?? definition?.options.priority;
    if (priority !== undefined) {
      if (!(Number.isInteger(priority) && priority >= 0 && priority <= 9)) {
        throw new ConfigError(`${where}: priority must be an integer from 0 (most urgent) to 9, not ${priority}`);
      }
      options.priority = priority;
    }
    if (o.maxRetries !== undefined) {
      if (!(Number.isInteger(o.maxRetries) && o.maxRetries >= 0))
        throw new ConfigError(`${where}: maxRetries must be an integer ≥ 0`);
      options.maxRetries = o.maxRetries;
    }
    if (o.countdown !== undefined) options.countdown = duration(o.countdown, `${where}: countdown`);
    if (o.eta !== undefined) options.eta = time(o.eta, `${where}: eta`);
    // Refused now rather than when a worker enqueues the step, long after the workflow was sent.
    const now = Date.now();
    const horizon = this.app.etaHorizon;
    const eta = options.eta ?? (options.countdown !== undefined ? now + options.countdown : undefined);
    if (eta !== undefined && eta - now > horizon) throw new EtaBeyondHorizonError(sig.task, eta, now, horizon);
    const expires = o.expires ?? definition?.options.expires;
    if (expires instanceof Date) options.expiresAt = time(expires, `${where}: expires`);
    else if (expires !== undefined) options.expiresInMs = duration(expires, `${where}: expires`);
    if (o.headers !== undefined) {
      assertJson(o.headers, `headers of ${sig.task}`);
      options.headers = o.headers;
    }
    const spec: SignatureSpec = { id: o.taskId ?? randomUUID(), task: sig.task, args: sig.args as JsonValue[], queue };
    if (Object.keys(options).length > 0) spec.options = options;
    const links = listOf(o.link);
    const errbacks = listOf(o.linkError);
    if (links.length > 0) spec.link = links.map((link) => this.#linked(link));
    if (errbacks.length > 0) spec.linkError = errbacks.map((errback) => this.#linked(errback));
    return [spec];
  }

  #linked(part: unknown): Flow {
    if (!isCompilable(part)) {
      throw new CanvasError('CANVAS_INVALID', 'link and linkError take signatures, chains, groups or chords');
    }
    return this.root(part);
  }

  /** Steps run one after another. A group followed by more steps becomes a chord (as in Celery). */
  chain(steps: readonly Compilable[]): Flow {
    if (steps.length === 0) throw new CanvasError('CANVAS_INVALID', 'a chain needs at least one step');
    let flow: Flow = [];
    for (const step of steps) flow = append(flow, this.flow(step));
    return flow;
  }

  group(members: readonly Compilable[]): Flow {
    // Alone, an empty group is nothing to do (its result is []); inside a workflow it would leave a
    // chord or a chain with nothing to wait for, so it is refused.
    if (members.length === 0 && this.#depth > 1) {
      throw new CanvasError(
        'EMPTY_CHORD',
        'an empty group can only be sent on its own: inside a chain or chord it has nothing to wait for',
      );
    }
    const group: GroupSpec = { kind: 'group', id: randomUUID(), members: members.map((m) => this.flow(m)) };
    return [group];
  }

  chord(header: readonly Compilable[], body: Compilable): Flow {
    if (header.length === 0) throw emptyChord();
    return [
      chordOf(
        header.map((m) => this.flow(m)),
        this.flow(body),
      ),
    ];
  }
}

export function emptyChord(): CanvasError {
  return new CanvasError(
    'EMPTY_CHORD',
    'a chord needs at least one member: with an empty group, call the callback directly with []',
  );
}

export function isCompilable(x: unknown): x is Compilable {
  return typeof x === 'object' && x !== null && typeof (x as Partial<Compilable>)[COMPILE] === 'function';
}

function listOf<T>(x: T | readonly T[] | undefined): readonly T[] {
  return x === undefined ? [] : Array.isArray(x) ? (x as readonly T[]) : [x as T];
}

function duration(ms: number, what: string): number {
  if (!(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0))
    throw new ConfigError(`${what} must be a number of ms ≥ 0`);
  return ms;
}

function time(at: Date | number, what: string): number {
  const ms = +at;
  if (!Number.isFinite(ms)) throw new ConfigError(`${what} must be a valid Date or epoch ms`);
  return ms;
}

/** A chord: `body` runs with the list of the header's results. Its slots are numbered later. */
function chordOf(header: Flow[], body: Flow): ChordSpec {
  const callback = body[0];
  if (!callback || !isTask(callback)) {
    throw new CanvasError(
      'CANVAS_INVALID',
      "a chord's callback must be a task signature (or a chain that starts with one), not a group or a chord",
    );
  }
  const o = callback.options ?? {};
  if (o.countdown !== undefined || o.eta !== undefined || o.expiresAt !== undefined || o.expiresInMs !== undefined) {
    throw new CanvasError(
      'CANVAS_INVALID',
      `chord callback ${callback.task} runs when its chord completes: countdown, eta and expires are not supported on it`,
    );
  }
  return { kind: 'chord', id: callback.id as string, header, body, size: 0 };
}

/**
 * `tail` after `flow`. A group or a chord is always the last node of its flow: what follows a group
 * makes it a chord; what follows a chord goes after its callback.
 */
function append(flow: Flow, tail: Flow): Flow {
  const last = flow.at(-1);
  if (last === undefined) return tail;
  if (isTask(last)) {
    flow.push(...tail);
    return flow;
  }
  flow.pop();
  if (isGroup(last)) {
    if (last.members.length === 0) throw emptyChord();
    if (!tail[0] || !isTask(tail[0])) {
      throw new CanvasError(
        'CANVAS_INVALID',
        'in a chain, a group must be followed by a task (it becomes the callback of a chord), not by another group or a chord',
      );
    }
    flow.push(chordOf(last.members, tail));
  } else {
    flow.push({ ...last, body: append(last.body, tail) });
  }
  return flow;
}

interface Slots {
  id: string;
  queue: string;
  next: number;
}

/**
 * Numbers every chord's slots: the call that ends each flow of its header (each member of a nested
 * group counts) gets `chord: {id, index, queue}`, and the chord its size and the shape of its list.
 * Returns the shape of the flow's own result within `slots` (`#` one slot, `[#,#]` a group of two).
 */
function numberSlots(flow: Flow, slots: Slots | undefined): string {
  const last = flow.at(-1);
  if (last === undefined) return '[]';
  if (isTask(last)) {
    if (slots) last.chord = { id: slots.id, index: slots.next++, queue: slots.queue };
    return '#';
  }
  if (isGroup(last)) return `[${last.members.map((member) => numberSlots(member, slots)).join(',')}]`;
  if (!isChord(last)) return '#';
  const callback = last.body[0] as SignatureSpec;
  const own: Slots = { id: last.id, queue: callback.queue as string, next: 0 };
  const shape = `[${last.header.map((member) => numberSlots(member, own)).join(',')}]`;
  if (own.next === 0) throw emptyChord();
  last.size = own.next;
  if (shape !== `[${Array.from({ length: own.next }, () => '#').join(',')}]`) last.shape = shape;
  return numberSlots(last.body, slots);
}
