import type { Broker, BrokerDefinition, BrokerSettings } from './brokers/broker.ts';
import { type CallTarget, type Deadline, withDeadline } from './brokers/deadline.ts';
import { RedisBroker } from './brokers/redis/broker.ts';
import { redis } from './brokers/redis/definition.ts';
import { type Launch, start } from './canvas/launch.ts';
import { Control } from './control.ts';
import { NoResultBackendError } from './errors.ts';
import type { Envelope } from './message/envelope.ts';
import { RedisResultBackend } from './results/redis-backend.ts';
import type { ResultRecord } from './results/result.ts';

/** What a Producer reads of its app: where the broker and backend are, and the bounds. */
export interface ProducerSettings {
  readonly brokerUrl: string;
  readonly backendUrl: string | undefined;
  readonly brokerTimeout: number;
  readonly prefix: string;
  readonly brokerDefinition: BrokerDefinition;
  readonly brokerSettings: BrokerSettings;
  /** The app's own broker: shared by the producer when its definition has no openProducer. */
  readonly broker: Broker;
}

/**
 * What an application's calls go through — enqueueing (delay, applyAsync, applyBulk, a workflow's
 * delay), reading results, forget and revoke — each within the app's brokerTimeout, after which it
 * rejects with a BrokerUnavailableError. They use connections of their own where the broker's
 * definition opens them (openProducer; Redis' never hold a command back to send it once Redis is back):
 * a call that gave up before it was sent is never sent. The worker's connections (app.broker, backend,
 * control) wait for the broker instead, as long as it takes.
 */
export class Producer {
  readonly #app: ProducerSettings;
  /** A producer connection per URL: the broker's, and the backend's when it is another Redis. */
  readonly #connections = new Map<string, Broker>();
  #backend: RedisResultBackend | undefined;
  #control: Control | undefined;

  constructor(app: ProducerSettings) {
    this.#app = app;
  }

  publish(envelopes: readonly Envelope[]): Promise<void> {
    return this.#within('broker', (deadline) => this.#broker().publish(envelopes, { deadline }));
  }

  /** Starts a workflow: its chords opened, then its first calls sent, all within one deadline. */
  launch(launch: Launch): Promise<void> {
    return this.#within('broker', (deadline) => start(this.#broker(), launch, { deadline }));
  }

  async result(id: string): Promise<ResultRecord | undefined> {
    const backend = this.#resultBackend('reading results');
    return this.#within('result backend', (deadline) => backend.get(id, { deadline }));
  }

  /** Waits up to `timeoutMs` for a result; brokerTimeout bounds only subscribing and the first read. */
  async waitReady(id: string, timeoutMs: number): Promise<ResultRecord | undefined> {
    const backend = this.#resultBackend('reading results');
    return this.#within('result backend', (deadline) => backend.waitReady(id, timeoutMs, { deadline }));
  }

  async forget(id: string): Promise<void> {
    const backend = this.#resultBackend('reading results');
    await this.#within('result backend', (deadline) => backend.forget(id, { deadline }));
  }

  async revoke(ids: readonly string[], { terminate = false }: { terminate?: boolean } = {}): Promise<void> {
    const url = this.#app.backendUrl;
    if (url === undefined) throw new NoResultBackendError('revoke and inspect');
    this.#control ??= new Control(this.#redis(url).redis, this.#app.prefix);
    const control = this.#control;
    await this.#within('result backend', (deadline) => control.revoke(ids, { terminate, deadline }));
  }

  async close(): Promise<void> {
    await this.#control?.close();
    await this.#backend?.close();
    await Promise.all([...this.#connections.values()].map((broker) => broker.close()));
  }

  /** Runs one call within a fresh brokerTimeout against the broker or the result backend. */
  #within<T>(what: CallTarget['what'], call: (deadline: Deadline) => Promise<T>): Promise<T> {
    const url = (what === 'broker' ? this.#app.brokerUrl : this.#app.backendUrl) ?? '';
    return withDeadline(this.#app.brokerTimeout, { what, url }, call);
  }

  #broker(): Broker {
    const { brokerUrl, brokerDefinition } = this.#app;
    // A broker whose client holds no call back to send it later needs only a deadline: the producer
    // shares the app's client (closed by the app).
    return brokerDefinition.openProducer ? this.#connection(brokerUrl, brokerDefinition) : this.#app.broker;
  }

  #resultBackend(what: string): RedisResultBackend {
    const url = this.#app.backendUrl;
    if (url === undefined) throw new NoResultBackendError(what);
    this.#backend ??= new RedisResultBackend(this.#redis(url).redis, this.#app.prefix);
    return this.#backend;
  }

  /** The producer connection to this URL, opened by the definition of the broker there. */
  #connection(url: string, definition: BrokerDefinition): Broker {
    let broker = this.#connections.get(url);
    if (!broker) {
      const settings = this.#app.brokerSettings;
      broker = definition.openProducer?.(url, settings) ?? definition.open(url, settings);
      this.#connections.set(url, broker);
    }
    return broker;
  }

  /** The result backend's Redis (the broker's connection when it is the same Redis). */
  #redis(url: string): RedisBroker {
    const broker = this.#connection(url, redis);
    // (the backend's URL is checked to be a Redis URL when the app is made)
    if (!(broker instanceof RedisBroker)) throw new Error('the result backend is not a Redis');
    return broker;
  }
}
