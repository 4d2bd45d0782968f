/**
 * The worker's side of workflows: what happens after a call's final outcome, before its delivery is
 * acknowledged. Everything here is safe to repeat, because a worker killed before the acknowledgement
 * runs the call again: chords are opened once, and a chord slot is filled once.
 */
import type { Broker, ChordMemberOutcome } from '../brokers/broker.ts';
import type { RecordedError } from '../errors.ts';
import { type ChordFailure, type ChordRef, outerChordSlots, tasksOf } from '../message/canvas-spec.ts';
import type { Envelope } from '../message/envelope.ts';
import type { JsonValue } from '../message/json.ts';
import type { Logger } from '../observe/logger.ts';
import type { ResultBackend, ResultRecord } from '../results/result.ts';
import type { TaskFailure } from '../task.ts';
import { type Launch, type LaunchContext, plan, start } from './launch.ts';

/** What the worker's side of workflows reads of its app. */
export interface WorkflowHost {
  readonly broker: Broker;
  readonly hasBackend: boolean;
  readonly backend: ResultBackend;
  readonly resultExpires: number;
  readonly etaHorizon: number;
}

export class CanvasRuntime {
  readonly #app: WorkflowHost;
  readonly #log: Logger;

  constructor(app: WorkflowHost, log: Logger) {
    this.#app = app;
    this.#log = log;
  }

  /** Whether a call takes part in a workflow (most do not, and skip all of this). */
  static involved(envelope: Envelope): boolean {
    return (
      envelope.chain !== undefined ||
      envelope.chord !== undefined ||
      envelope.link !== undefined ||
      envelope.linkError !== undefined
    );
  }

  /** After a call succeeded: start the rest of its chain and its links, then fill its chord slot. */
  async succeeded(envelope: Envelope, value: JsonValue): Promise<void> {
    const launch: Launch = { chords: [], envelopes: [] };
    const context = this.#context(envelope, value);
    if (envelope.chain && envelope.chain.length > 0) plan(envelope.chain, context, launch);
    for (const link of envelope.link ?? []) plan(link, context, launch);
    await start(this.#app.broker, launch);
    // A chord slot is only ever on the last call of a flow; the guard keeps an odd message harmless.
    if (envelope.chord && !(envelope.chain && envelope.chain.length > 0)) {
      await this.#fill(envelope, envelope.chord, { ok: true, value });
    }
  }

  /**
   * After a call failed for good (or was revoked, expired, dead-lettered): the calls after it will
   * never run, so they are recorded FAILURE; the chords waiting on it or on them fail; and for a
   * failure, its errbacks run with a TaskFailure.
   */
  async failed(envelope: Envelope, error: RecordedError, state: 'FAILURE' | 'REVOKED'): Promise<void> {
    const rest = envelope.chain ?? [];
    const what = state === 'REVOKED' ? 'was revoked' : 'failed';
    if (rest.length > 0 && this.#app.hasBackend) {
      const cause = {
        name: 'ChainFailed',
        message: `an earlier step (${envelope.task} ${envelope.id}) ${what}: ${error.message}`,
      };
      await Promise.all(
        tasksOf(rest)
          .filter((step) => step.id !== undefined)
          .map((step) =>
            this.#store({
              id: step.id as string,
              task: step.task,
              state: 'FAILURE',
              error: cause,
              attempts: 0,
              queue: step.queue ?? envelope.queue,
              finishedAt: Date.now(),
              parentId: envelope.id,
              rootId: envelope.rootId,
            }),
          ),
      );
    }
    const brief = {
      name: error.name,
      message: error.message,
      ...(error.code !== undefined ? { code: error.code } : {}),
    };
    const slots = [...(envelope.chord ? [envelope.chord] : []), ...outerChordSlots(rest)];
    for (const slot of slots) {
      const failure: ChordFailure = {
        index: slot.index,
        taskId: envelope.id,
        task: envelope.task,
        error: state === 'REVOKED' ? { ...brief, message: `revoked: ${brief.message}` } : brief,
      };
      await this.#fill(envelope, slot, { ok: false, failure });
    }
    if (state === 'FAILURE' && envelope.linkError && envelope.linkError.length > 0) {
      const description: TaskFailure = { taskId: envelope.id, task: envelope.task, error: brief };
      const launch: Launch = { chords: [], envelopes: [] };
      const context = this.#context(envelope, description as unknown as JsonValue);
      for (const errback of envelope.linkError) plan(errback, context, launch);
      await start(this.#app.broker, launch);
    }
  }

  #context(envelope: Envelope, value: JsonValue): LaunchContext {
    return {
      input: { value },
      parentId: envelope.id,
      rootId: envelope.rootId,
      queue: envelope.queue,
      chordTtlMs: this.#app.resultExpires,
      now: Date.now(),
      etaHorizonMs: this.#app.etaHorizon,
    };
  }

  async #fill(envelope: Envelope, slot: ChordRef, outcome: ChordMemberOutcome): Promise<void> {
    // (a broker without chords refused the workflow when it was launched: no member of one runs on it)
    const chords = this.#app.broker.chords;
    const progress = chords ? await chords.completeChordMember(slot, outcome, this.#app.resultExpires) : 'unknown';
    const fields = { task: envelope.task, taskId: envelope.id, chord: slot.id, slot: slot.index };
    if (progress === 'completed') this.#log.info('chord complete: callback enqueued', fields);
    else if (progress === 'failed') this.#log.warn('chord failed: its callback will record the failure', fields);
    else if (progress === 'unknown') {
      this.#log.warn('chord not found (expired, or never opened): this result is not recorded in it', fields);
    }
  }

  #store(record: ResultRecord): Promise<void> {
    return this.#app.backend.store(record, this.#app.resultExpires);
  }
}
