/**
 * The worker's side of the fleet's control plane (worker/src/control.ts): the revocations it honours,
 * the control messages it answers, and the heartbeats that `taskfleet inspect` and the operator read.
 */
import type { Control, ControlMessage, ControlSubscription, WorkerHeartbeat } from '../control.ts';
import type { Logger } from '../observe/logger.ts';
import type { Clock, Timer } from './clock.ts';

/** What remote control needs of its worker. */
export interface RemoteControlContext {
  readonly id: string;
  readonly hostname: string;
  readonly queue: string;
  readonly concurrency: number;
  readonly version: string;
  /** When the worker started (epoch ms). */
  readonly startedAt: number;
  readonly clock: Clock;
  readonly log: Logger;
  readonly control: Pick<Control, 'listen' | 'revoked' | 'beat' | 'leave'>;
  /** What the worker is doing, as its heartbeat says it. */
  status(): Pick<WorkerHeartbeat, 'active' | 'reserved' | 'processed'>;
  /** Terminates the calls of `id` that run now (a revoke with terminate). */
  terminate(id: string): void;
  stopping(): boolean;
}

export class RemoteControl {
  readonly #context: RemoteControlContext;
  readonly #revoked = new Set<string>();
  #subscription: ControlSubscription | undefined;
  #heartbeats: Timer | undefined;
  /** How long a heartbeat lives (three intervals), once heartbeats run. */
  #ttlMs: number | undefined;
  /** The last report request answered, and when (see Control.report). */
  #report: { id: string; at: number } | undefined;

  constructor(context: RemoteControlContext) {
    this.#context = context;
  }

  /** Whether a call was revoked (a revocation not seen, one sent while the worker was away included, is not). */
  isRevoked(id: string): boolean {
    return this.#revoked.has(id);
  }

  /** Subscribes to control messages, then loads the revoked set: a revoke in between is seen by one or the other. */
  async listen(): Promise<void> {
    this.#subscription = this.#context.control.listen({
      message: (message) => this.#onMessage(message),
      invalid: (error) => this.#context.log.warn('ignored a bad control message', { error }),
      // After a reconnect, messages sent meanwhile were missed: reload the set.
      connected: () => void this.#loadRevoked(),
    });
    await this.#subscription.subscribed;
    await this.#loadRevoked();
  }

  /** Writes a heartbeat now and then every `intervalMs`, each living three intervals. */
  startHeartbeats(intervalMs: number): void {
    this.#ttlMs = intervalMs * 3;
    const beat = () => this.#beatSafely();
    beat();
    this.#heartbeats = this.#context.clock.interval(intervalMs, beat);
  }

  stopHeartbeats(): void {
    this.#heartbeats?.cancel();
  }

  /** Takes the worker off the list of live workers. */
  leave(): Promise<void> {
    return this.#context.control.leave(this.#context.id);
  }

  /** Stops listening to control messages. */
  close(): void {
    this.#subscription?.close();
  }

  async #loadRevoked(): Promise<void> {
    try {
      for (const id of await this.#context.control.revoked()) this.#revoked.add(id);
    } catch (error) {
      this.#context.log.warn('could not load revoked tasks', { error });
    }
  }

  #onMessage(message: ControlMessage): void {
    if (message.type === 'report') {
      // The operator ranks pods by their calls before a scale-down: it wants them now, not as of the
      // last heartbeat. Only while heartbeats run (consuming, not stopping: a worker that left stays gone).
      if (message.queue !== this.#context.queue || this.#ttlMs === undefined || this.#context.stopping()) return;
      this.#beatSafely(message.id);
      return;
    }
    if (message.type !== 'revoke') return;
    for (const id of message.ids) {
      this.#revoked.add(id);
      if (message.terminate) this.#context.terminate(id);
    }
  }

  #beatSafely(answering?: string): void {
    void this.#beat(this.#ttlMs as number, answering).catch((error) =>
      this.#context.log.warn('heartbeat failed', { error }),
    );
  }

  async #beat(ttlMs: number, answering?: string): Promise<void> {
    const { id, hostname, queue, concurrency, version, startedAt, clock } = this.#context;
    const at = clock.now();
    if (answering) this.#report = { id: answering, at };
    const heartbeat: WorkerHeartbeat = {
      id,
      hostname,
      pid: process.pid,
      queue,
      concurrency,
      startedAt,
      at,
      version,
      ...this.#context.status(),
      ...(this.#report ? { report: this.#report.id, reportAt: this.#report.at } : {}),
    };
    await this.#context.control.beat(heartbeat, ttlMs, answering ? { answering } : {});
  }
}
