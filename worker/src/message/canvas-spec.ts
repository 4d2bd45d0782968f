/**
 * Workflows as they travel in messages: what a chain, group or chord still has to do, in JSON.
 * `canvas.ts` builds them from signatures; the worker reads them from envelopes and carries them on.
 *
 * A flow is a list of nodes run one after another, each receiving the previous result as its first
 * argument. Only a task node may be followed by more: a group or a chord is always the last node of
 * its flow (`chain(a, group(b, c), d)` is sent as `[a, chord([b, c], d)]`, as Celery does).
 */
import type { JsonValue } from './json-value.ts';
import { isQueueName } from './names.ts';

/** Most levels of nesting (chains, groups, chords, links inside one another) a workflow may have. */
export const MAX_CANVAS_DEPTH = 32;
/** Most task signatures one workflow may hold, links and nested parts included. */
export const MAX_CANVAS_SIGNATURES = 10_000;

/** Where a call's final result goes: slot `index` of the chord `id`, whose keys share `queue`'s hash tag. */
export interface ChordRef {
  /** The chord's id, which is its callback's task id. */
  id: string;
  /** The slot, from 0, in the order the chord's header lists its members. */
  index: number;
  /** The callback's queue: the chord's keys carry its hash tag. */
  queue: string;
}

/** A task call to make later: what `task.s(...)` builds and chains carry. */
export interface SignatureSpec {
  /** The id the call will have, fixed in advance so a workflow's results can be waited on from the start. */
  id?: string;
  task: string;
  args: JsonValue[];
  queue?: string;
  options?: {
    priority?: number;
    maxRetries?: number;
    /** Expires this long after the call is enqueued. */
    expiresInMs?: number;
    /** Expires at this time (epoch ms). */
    expiresAt?: number;
    /** Runs no sooner than this long after it is enqueued. */
    countdown?: number;
    /** Runs no sooner than this time (epoch ms). */
    eta?: number;
    headers?: Record<string, string>;
  };
  /** Flows started with this call's result as their first argument when it succeeds. */
  link?: Flow[];
  /** Flows started with a TaskFailure as their first argument when it fails for good. */
  linkError?: Flow[];
  /** The chord slot this call's result fills: set on the last call of each flow of a chord's header. */
  chord?: ChordRef;
}

/** Members started together, each with the same input. Its result is the list of theirs, in order. */
export interface GroupSpec {
  kind: 'group';
  id: string;
  members: Flow[];
}

/**
 * A group whose results, in order, are the first argument of `body` once every member has finished.
 * `body[0]` is a task (the callback); its id is the chord's id, and the chord's result.
 */
export interface ChordSpec {
  kind: 'chord';
  id: string;
  header: Flow[];
  body: Flow;
  /** How many slots the header fills: one per call that ends a flow of the header. */
  size: number;
  /**
   * The shape of the callback's list when a member is itself a group (the slots nest): each `#` is the
   * next slot, e.g. `[#,[#,#]]`. Absent for a flat list of `size` slots.
   */
  shape?: string;
}

export type NodeSpec = SignatureSpec | GroupSpec | ChordSpec;
export type Flow = NodeSpec[];

/** A chord member's failure, as the chord's callback message carries it when the chord has failed. */
export interface ChordFailure {
  /** The slot of the member that failed (-1: the chord itself, e.g. its results were too large). */
  index: number;
  taskId?: string;
  task?: string;
  error: { name: string; message: string; code?: string };
}

export function isGroup(node: NodeSpec): node is GroupSpec {
  return (node as GroupSpec).kind === 'group';
}
export function isChord(node: NodeSpec): node is ChordSpec {
  return (node as ChordSpec).kind === 'chord';
}
export function isTask(node: NodeSpec): node is SignatureSpec {
  return (node as { kind?: unknown }).kind === undefined;
}

/**
 * What is wrong with a flow read from a message, one phrase per problem (empty if nothing): shapes,
 * nesting deeper than MAX_CANVAS_DEPTH, more than MAX_CANVAS_SIGNATURES tasks. Iterative, so a
 * hostile message cannot exhaust the stack before its depth is judged.
 */
export function flowProblems(flow: unknown, field: string): string[] {
  const problems: string[] = [];
  let signatures = 0;
  const stack: { value: unknown; path: string; depth: number; kind: 'flow' | 'node' }[] = [
    { value: flow, path: field, depth: 1, kind: 'flow' },
  ];
  const isRecord = (x: unknown): x is Record<string, unknown> =>
    typeof x === 'object' && x !== null && !Array.isArray(x);
  const isString = (x: unknown): x is string => typeof x === 'string' && x.length > 0;
  const flows = (value: unknown, path: string, depth: number, nonEmpty = false) => {
    if (!Array.isArray(value) || (nonEmpty && value.length === 0)) {
      problems.push(`${path} must be ${nonEmpty ? 'a non-empty ' : 'an '}array of flows`);
      return;
    }
    value.forEach((f, i) => {
      stack.push({ value: f, path: `${path}[${i}]`, depth, kind: 'flow' });
    });
  };
  while (stack.length > 0 && problems.length < 5) {
    const { value, path, depth, kind } = stack.pop() as (typeof stack)[number];
    if (depth > MAX_CANVAS_DEPTH) {
      problems.push(`${field} is nested more than ${MAX_CANVAS_DEPTH} deep`);
      break;
    }
    if (kind === 'flow') {
      if (!Array.isArray(value) || value.length === 0) {
        problems.push(`${path} must be a non-empty array of steps`);
        continue;
      }
      value.forEach((node, i) => {
        if (i < value.length - 1 && isRecord(node) && node.kind !== undefined) {
          problems.push(`${path}[${i}]: a ${String(node.kind)} must be the last step of its flow`);
        }
        stack.push({ value: node, path: `${path}[${i}]`, depth, kind: 'node' });
      });
      continue;
    }
    if (!isRecord(value)) {
      problems.push(`${path} must be an object`);
      continue;
    }
    if (value.kind === undefined) {
      if (++signatures > MAX_CANVAS_SIGNATURES) {
        problems.push(`${field} holds more than ${MAX_CANVAS_SIGNATURES} signatures`);
        break;
      }
      if (!isString(value.task) || !Array.isArray(value.args)) problems.push(`${path} must have a task and args`);
      if (value.id !== undefined && !isString(value.id)) problems.push(`${path}.id must be a non-empty string`);
      // Everything a worker later builds a message from is checked here, on arrival: a step it could
      // not enqueue would otherwise fail only after its predecessor ran, every time it ran.
      if (value.queue !== undefined && !isQueueName(value.queue)) problems.push(`${path}.queue ${QUEUE_RULE}`);
      if (value.options !== undefined) {
        if (isRecord(value.options)) problems.push(...optionProblems(value.options, `${path}.options`));
        else problems.push(`${path}.options must be an object`);
      }
      if (value.chord !== undefined && !isChordRef(value.chord)) problems.push(`${path}.chord must be a chord slot`);
      if (value.link !== undefined) flows(value.link, `${path}.link`, depth + 1);
      if (value.linkError !== undefined) flows(value.linkError, `${path}.linkError`, depth + 1);
    } else if (value.kind === 'group') {
      if (!isString(value.id)) problems.push(`${path}.id must be a non-empty string`);
      flows(value.members, `${path}.members`, depth + 1);
    } else if (value.kind === 'chord') {
      if (!isString(value.id)) problems.push(`${path}.id must be a non-empty string`);
      if (!(Number.isInteger(value.size) && (value.size as number) >= 1)) problems.push(`${path}.size must be ≥ 1`);
      else if ((value.size as number) > MAX_CANVAS_SIGNATURES)
        problems.push(`${path}.size must be at most ${MAX_CANVAS_SIGNATURES}`);
      if (value.shape !== undefined && !isShape(value.shape, value.size))
        problems.push(`${path}.shape must be a list of size '#' slots, such as [#,[#,#]]`);
      flows(value.header, `${path}.header`, depth + 1, true);
      const body = value.body;
      if (!Array.isArray(body) || body.length === 0 || !isRecord(body[0]) || body[0].kind !== undefined) {
        problems.push(`${path}.body must be a flow that starts with a task`);
      } else {
        stack.push({ value: body, path: `${path}.body`, depth: depth + 1, kind: 'flow' });
      }
    } else {
      problems.push(`${path}.kind ${JSON.stringify(value.kind)} is not a task, group or chord`);
    }
  }
  return problems;
}

/** How a queue name must be written, for problems that name the field. */
const QUEUE_RULE = "must be a queue name: 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit";

/** What is wrong with a signature's options (SignatureSpec.options), one phrase per field. */
function optionProblems(o: Record<string, unknown>, path: string): string[] {
  const problems: string[] = [];
  const need = (field: string, ok: boolean, what: string) => {
    if (o[field] !== undefined && !ok) problems.push(`${path}.${field} must be ${what}`);
  };
  const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  need(
    'priority',
    Number.isInteger(o.priority) && (o.priority as number) >= 0 && (o.priority as number) <= 9,
    'an integer from 0 to 9',
  );
  need('maxRetries', Number.isInteger(o.maxRetries) && (o.maxRetries as number) >= 0, 'an integer ≥ 0');
  need('countdown', finite(o.countdown) && o.countdown >= 0, 'a number of ms ≥ 0');
  need('expiresInMs', finite(o.expiresInMs) && o.expiresInMs >= 0, 'a number of ms ≥ 0');
  need('eta', finite(o.eta), 'a timestamp in ms');
  need('expiresAt', finite(o.expiresAt), 'a timestamp in ms');
  need(
    'headers',
    typeof o.headers === 'object' &&
      o.headers !== null &&
      !Array.isArray(o.headers) &&
      Object.values(o.headers).every((value) => typeof value === 'string'),
    'an object of strings',
  );
  return problems;
}

/** A chord's shape: brackets, commas and exactly `size` slots (`#`), which complete-chord-member.lua fills. */
function isShape(shape: unknown, size: unknown): boolean {
  if (typeof shape !== 'string' || !/^[[\],#]*$/.test(shape)) return false;
  let slots = 0;
  for (const c of shape) if (c === '#') slots++;
  return slots === size;
}

export function isChordRef(x: unknown): x is ChordRef {
  if (typeof x !== 'object' || x === null) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.id === 'string' &&
    r.id.length > 0 &&
    isQueueName(r.queue) &&
    Number.isInteger(r.index) &&
    (r.index as number) >= 0
  );
}

export function isChordFailure(x: unknown): x is ChordFailure {
  if (typeof x !== 'object' || x === null) return false;
  const f = x as Record<string, unknown>;
  const error = f.error as Record<string, unknown> | null | undefined;
  return (
    Number.isInteger(f.index) &&
    typeof error === 'object' &&
    error !== null &&
    typeof error.name === 'string' &&
    typeof error.message === 'string'
  );
}

/**
 * Every task node of a flow, nested groups and chords included (not links: they start only if their
 * call ends). Recursive; flows read from messages were checked for depth first.
 */
export function tasksOf(flow: Flow, into: SignatureSpec[] = []): SignatureSpec[] {
  for (const node of flow) {
    if (isTask(node)) into.push(node);
    else if (isGroup(node)) for (const member of node.members) tasksOf(member, into);
    else {
      for (const member of node.header) tasksOf(member, into);
      tasksOf(node.body, into);
    }
  }
  return into;
}

/**
 * The chord slots a flow would have filled that belong to chords outside it: when the flow cannot
 * run (an earlier step failed), those chords must fail, or they would wait forever.
 */
export function outerChordSlots(flow: Flow): ChordRef[] {
  const inner = new Set<string>();
  const collect = (f: Flow) => {
    for (const node of f) {
      if (isChord(node)) {
        inner.add(node.id);
        for (const member of node.header) collect(member);
        collect(node.body);
      } else if (isGroup(node)) for (const member of node.members) collect(member);
    }
  };
  collect(flow);
  const slots = new Map<string, ChordRef>();
  for (const task of tasksOf(flow)) {
    if (task.chord && !inner.has(task.chord.id) && !slots.has(task.chord.id)) slots.set(task.chord.id, task.chord);
  }
  return [...slots.values()];
}
