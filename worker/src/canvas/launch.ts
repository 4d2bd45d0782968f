/**
 * Starting a flow: the messages of the calls it begins with, and the chords it opens. The producer
 * starts a whole workflow this way; a worker starts what follows a call (the rest of a chain, links,
 * errbacks) the same way, with the call's result as input.
 */
import type { Broker, ChordOpening, SendOptions } from '../brokers/broker.ts';
import { BROKERS } from '../brokers/registry.ts';
import { ConfigError } from '../errors.ts';
import { type Flow, isGroup, isTask, type SignatureSpec } from '../message/canvas-spec.ts';
import { createEnvelope, type Envelope } from '../message/envelope.ts';
import type { JsonValue } from '../message/json.ts';

export interface LaunchContext {
  /** Given to the calls the flow begins with, before their own arguments. */
  input?: { value: JsonValue };
  parentId?: string;
  rootId?: string;
  /** The queue of a call whose spec names none (written by an earlier version): the caller's. */
  queue: string;
  /** How long chords opened here are kept (ms). */
  chordTtlMs: number;
  now: number;
  /** The furthest ahead a call's countdown or ETA may put it (ms; see TaskfleetOptions.etaHorizon). */
  etaHorizonMs?: number;
}

/** What starting a flow takes: chords to open first, then messages to publish. */
export interface Launch {
  chords: ChordOpening[];
  envelopes: Envelope[];
}

/**
 * Plans the start of `flow`: a call, or for a group or chord, each member's first call. A workflow
 * started here (no rootId yet) is rooted at its first call, or at its group or chord when it starts
 * with one: every call of it then carries that id as its rootId, the one its handle has.
 */
export function plan(flow: Flow, context: LaunchContext, into: Launch = { chords: [], envelopes: [] }): Launch {
  const [first] = flow;
  const rooted =
    context.rootId === undefined && first !== undefined && !isTask(first) ? { ...context, rootId: first.id } : context;
  planFlow(flow, rooted, into, undefined);
  return into;
}

function planFlow(flow: Flow, context: LaunchContext, into: Launch, groupId: string | undefined): void {
  const [node, ...rest] = flow;
  if (node === undefined) return;
  if (isTask(node)) {
    into.envelopes.push(callOf(node, rest, context, groupId));
  } else if (isGroup(node)) {
    for (const member of node.members) planFlow(member, context, into, node.id);
  } else {
    const [callback, ...after] = node.body as [SignatureSpec, ...Flow];
    // The callback's own arguments only: the list of results goes before them when the chord completes.
    const { input: _, ...withoutInput } = context;
    into.chords.push({
      id: node.id,
      size: node.size,
      ...(node.shape !== undefined ? { shape: node.shape } : {}),
      callback: callOf(callback, after, withoutInput, undefined),
      ttlMs: context.chordTtlMs,
    });
    for (const member of node.header) planFlow(member, context, into, node.id);
  }
}

function callOf(spec: SignatureSpec, rest: Flow, context: LaunchContext, groupId: string | undefined): Envelope {
  const o = spec.options ?? {};
  const eta = o.eta ?? (o.countdown !== undefined ? context.now + o.countdown : undefined);
  const expires = o.expiresAt ?? (o.expiresInMs !== undefined ? context.now + o.expiresInMs : undefined);
  return createEnvelope({
    task: spec.task,
    args: context.input ? [context.input.value, ...spec.args] : spec.args,
    queue: spec.queue ?? context.queue,
    now: context.now,
    ...(context.etaHorizonMs !== undefined ? { etaHorizonMs: context.etaHorizonMs } : {}),
    ...(spec.id !== undefined ? { id: spec.id } : {}),
    ...(eta !== undefined ? { eta } : {}),
    ...(expires !== undefined ? { expires } : {}),
    ...(o.priority !== undefined ? { priority: o.priority } : {}),
    ...(o.maxRetries !== undefined ? { maxRetries: o.maxRetries } : {}),
    ...(o.headers !== undefined ? { headers: o.headers } : {}),
    ...(context.parentId !== undefined ? { parentId: context.parentId } : {}),
    ...(context.rootId !== undefined ? { rootId: context.rootId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
    ...(rest.length > 0 ? { chain: rest } : {}),
    ...(spec.chord !== undefined ? { chord: spec.chord } : {}),
    ...(spec.link !== undefined ? { link: spec.link } : {}),
    ...(spec.linkError !== undefined ? { linkError: spec.linkError } : {}),
  });
}

/**
 * Opens the chords, then publishes the calls: a member can only finish once its chord exists. Both
 * are safe to repeat (a launch redelivered after a crash): an open chord is left as it is, and a call
 * published twice fills its chord slot once.
 */
export async function start(broker: Broker, launch: Launch, options: SendOptions = {}): Promise<void> {
  if (launch.chords.length > 0) {
    const chords = broker.chords;
    if (!chords) throw new ConfigError(noChords());
    await Promise.all(launch.chords.map((chord) => chords.openChord(chord, options)));
  }
  await broker.publish(launch.envelopes, options);
}

/** Why a workflow with a chord cannot start on this broker, and which brokers can run it. */
function noChords(): string {
  const able = BROKERS.filter((b) => b.capabilities.chords).map((b) => b.name);
  return `chords need a broker that can record member results atomically with enqueueing the callback: use a ${able.join(' or ')} broker for queues that run chords (chains and groups work on every broker)`;
}
