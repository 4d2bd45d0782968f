import type { Consumer, Delivery } from '../brokers/broker.ts';
import type { DeadLetterReason, Envelope } from '../message/envelope.ts';
import type { Logger } from '../observe/logger.ts';
import type { TaskDefinition } from '../task.ts';
import type { Clock } from './clock.ts';

/** The longest task name a log line or dead-letter detail quotes (an unknown name is anyone's input). */
const MAX_QUOTED_NAME = 200;

/** What becomes of a delivery as it comes in. */
export type Intake =
  | { kind: 'dead-letter'; reason: DeadLetterReason; detail: string }
  | { kind: 'skip'; definition: TaskDefinition; why: 'revoked' | 'expired' }
  | { kind: 'put-back'; at: number }
  | { kind: 'hold'; definition: TaskDefinition }
  | { kind: 'line' };

/** What sorting a delivery reads: the tasks this worker runs, the calls revoked, and the time. */
export interface IntakeView {
  readonly tasks: ReadonlyMap<string, TaskDefinition>;
  readonly clock: Pick<Clock, 'now'>;
  revoked(id: string): boolean;
}

/**
 * Sorts a new delivery: dead-letter what cannot run (unreadable, or no task of that name here), skip a
 * call revoked or expired, put back one that came before its eta, hold one of a rate-limited task,
 * and line up the rest to run.
 */
export function sortDelivery(delivery: Delivery, view: IntakeView): Intake {
  const { tasks } = view;
  const { envelope, problem } = delivery;
  if (problem || !envelope) {
    return {
      kind: 'dead-letter',
      reason: problem?.reason ?? 'malformed',
      detail: problem?.message ?? 'invalid message',
    };
  }
  const definition = tasks.get(envelope.task);
  if (!definition) {
    const detail = `no task named ${quoted(envelope.task)} is registered on this worker (it runs: ${[...tasks.keys()].join(', ') || 'none'})`;
    return { kind: 'dead-letter', reason: 'unknown-task', detail };
  }
  const why = staleness(envelope, view);
  if (why) return { kind: 'skip', definition, why };
  // On its lane before its eta (written there directly, or by a producer whose clock runs behind):
  // back to the delayed set until then. Judged by the broker's clock (enqueuedAt) too, so a worker whose
  // clock runs behind the broker's never sends back a call the broker has found due.
  if (envelope.eta !== undefined && envelope.eta > delivery.enqueuedAt && envelope.eta > view.clock.now()) {
    return { kind: 'put-back', at: envelope.eta };
  }
  if (definition.options.rateLimit !== undefined) return { kind: 'hold', definition };
  return { kind: 'line' };
}

/** Whether a call may no longer run: revoked, or past its expiry. */
export function staleness(
  envelope: Envelope,
  view: Pick<IntakeView, 'clock' | 'revoked'>,
): 'revoked' | 'expired' | undefined {
  if (view.revoked(envelope.id)) return 'revoked';
  return envelope.expires !== undefined && view.clock.now() > envelope.expires ? 'expired' : undefined;
}

/** What the fetch loop needs of its worker. */
export interface FetchLoopContext extends IntakeView {
  readonly concurrency: number;
  readonly prefetch: number;
  readonly log: Logger;
  /** Calls whose handlers run now: each takes a slot. */
  running(): number;
  /**
   * Calls whose handlers are done and whose outcomes are being recorded (result and acknowledgement in
   * flight). They take no slot; up to `concurrency + prefetch` of them take no room either, so the next
   * calls are read and run while the last ones' settlement is on its way.
   */
  recording(): number;
  stopping(): boolean;
  /** Runs a call in a free slot. */
  run(delivery: Delivery): void;
  /** What becomes of the calls that do not run now (see sortDelivery). */
  deadLetter(delivery: Delivery, reason: DeadLetterReason, detail: string): void;
  skip(delivery: Delivery, envelope: Envelope, definition: TaskDefinition, why: 'revoked' | 'expired'): void;
  putBack(delivery: Delivery, at: number): void;
  hold(definition: TaskDefinition, delivery: Delivery): void;
}

/**
 * Pulls deliveries from the consumer while the worker has room for them: `concurrency` calls running
 * and `prefetch` more lined up, so that a slot never waits on a round trip, besides up to as many again
 * whose outcomes are being recorded. Full, it fetches nothing until a slot is freed.
 */
export class FetchLoop {
  readonly #context: FetchLoopContext;
  /** Calls lined up for a slot. */
  readonly #waiting: Delivery[] = [];
  #roomFreed: (() => void) | undefined;

  constructor(context: FetchLoopContext) {
    this.#context = context;
  }

  /** Calls lined up for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Fetches until `signal` aborts, or the consumer is closed under it. */
  async run(consumer: Pick<Consumer, 'receive' | 'release' | 'healthy'>, signal: AbortSignal): Promise<void> {
    const { concurrency, prefetch, log } = this.#context;
    // One listener for the loop's whole life: one added per wait would pile up on the signal, each
    // making the next addEventListener slower (it scans them all), for as long as the worker runs.
    signal.addEventListener('abort', () => this.#roomFreed?.(), { once: true });
    // Fetch in batches: while calls are still lined up (no slot can starve), wait until a quarter of
    // the room is free instead of fetching each time one slot frees — one read and one settlement per
    // batch, not per call.
    const capacity = concurrency + prefetch;
    const batch = Math.max(1, Math.ceil(capacity / 4));
    while (!signal.aborted) {
      const recordingBeyond = Math.max(0, this.#context.recording() - capacity);
      const room = capacity - this.#context.running() - this.#waiting.length - recordingBeyond;
      if (room <= 0 || (room < batch && this.#waiting.length > 0)) {
        await new Promise<void>((resolve) => {
          this.#roomFreed = resolve;
        });
        continue;
      }
      const deliveries = await consumer.receive(room, signal);
      if (signal.aborted) {
        await consumer.release(deliveries);
        break;
      }
      if (deliveries.length === 0 && !consumer.healthy) {
        // receive() returns nothing only when stopped or when its consumer was closed (the app closed
        // under a running worker): asking again would return at once, forever, and starve the process.
        log.error('the consumer was closed while the worker ran: it consumes no more; stop and restart it');
        break;
      }
      for (const delivery of deliveries) this.#accept(delivery);
      this.pump();
    }
  }

  /** Lines up a call that has waited for its rate limit, and starts it if a slot is free. */
  admit(delivery: Delivery): void {
    this.#waiting.push(delivery);
    this.pump();
  }

  /** Starts lined-up calls while slots are free. */
  pump(): void {
    const { concurrency, tasks } = this.#context;
    while (this.#context.running() < concurrency && this.#waiting.length > 0 && !this.#context.stopping()) {
      const delivery = this.#waiting.shift() as Delivery;
      const envelope = delivery.envelope as Envelope;
      // A call may have waited here a while, behind busy slots or a rate limit: it may have been
      // revoked or have expired since it was received, and neither may run.
      const definition = tasks.get(envelope.task) as TaskDefinition;
      const why = staleness(envelope, this.#context);
      if (why) this.#context.skip(delivery, envelope, definition, why);
      else this.#context.run(delivery);
    }
  }

  /** A slot was freed, or a call's outcome recorded: start the next call, and fetch again if the loop waits for room. */
  freed(): void {
    this.pump();
    const resolve = this.#roomFreed;
    this.#roomFreed = undefined;
    resolve?.();
  }

  /** Takes the calls lined up and not started (at shutdown, to hand them back). */
  takeWaiting(): Delivery[] {
    return this.#waiting.splice(0);
  }

  #accept(delivery: Delivery): void {
    const intake = sortDelivery(delivery, this.#context);
    switch (intake.kind) {
      case 'line':
        this.#waiting.push(delivery);
        break;
      case 'hold':
        this.#context.hold(intake.definition, delivery);
        break;
      case 'put-back':
        this.#context.putBack(delivery, intake.at);
        this.#context.log.debug('call received before its eta: put back until then', {
          taskId: delivery.envelope?.id,
          eta: intake.at,
        });
        break;
      case 'skip':
        this.#context.skip(delivery, delivery.envelope as Envelope, intake.definition, intake.why);
        break;
      case 'dead-letter':
        this.#context.deadLetter(delivery, intake.reason, intake.detail);
    }
  }
}

/** A task name as a log line or a dead letter quotes it: JSON (control characters escaped), and not too long. */
function quoted(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME ? `${name.slice(0, MAX_QUOTED_NAME)}…` : name);
}
