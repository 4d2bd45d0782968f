/**
 * What a broker's folder under operator/src/brokers gives the operator (see registry.ts): how its
 * targets are probed, and what its workers are given to reach it.
 */
import type { V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Backlog, Broker, BrokerDefinition } from 'taskfleet/operator';
import type { Static, TSchema } from 'typebox';
import type { SecretKeySelector } from '../api/fragments.ts';
import type { NamedReference } from '../api/names.ts';

/** The probe gave up waiting: its connection is dropped, and the next probe opens a new one. */
export class ProbeTimeoutError extends Error {}

/** How the operator reaches one broker to read its backlog: opened by the broker's definition. */
export interface ProbeConnection {
  /** The worker's adapter underneath (the reconciler fires a TaskQueue's schedules through it). */
  readonly broker: Broker;
  /**
   * Resolves once a probe may be sent; rejects with why it cannot (a ProbeTimeoutError when the
   * address accepted the connection and never answered within the connect timeout).
   */
  ready(): Promise<void>;
  backlog(queue: string): Promise<Backlog>;
  /** A failed probe's message as reported: where it went, when the client's own error does not say. */
  describe(message: string): string;
  close(): Promise<void>;
}

/** What the scaling policy sees of a backlog (see the broker definitions' scalingBacklog). */
export interface ScalingBacklog {
  ready: number;
  delayed: number;
  inFlight: number;
}

/** The probe side of a broker, as its operator definition gives it. */
export interface BrokerProbe<Target> {
  /** One connection per distinct key: the same broker, prefix and credentials (a digest, never a credential). */
  connectionKey(target: Target): string;
  /**
   * Opens a connection for probing: short timeouts and few retries (the probe goes out again at the
   * next poll), failing fast while the broker is away instead of queueing.
   */
  open(target: Target, options: { connectTimeoutMs: number }): ProbeConnection;
  /** The backlog the scaling policy sees: which delayed calls need a worker now. */
  scalingBacklog(backlog: Backlog): ScalingBacklog;
}

/**
 * What a worker needs to reach its broker, as the Deployment builder adds it to the worker container:
 * variables (Secrets by reference only), and a volume with its mount for files such as TLS keys.
 */
export interface WorkerBrokerSettings {
  env: V1EnvVar[];
  volume?: V1Volume;
  mount?: V1VolumeMount;
}

/** How a broker reads the Secrets its connection names: the reconciler's, for one TaskQueue and one reconcile. */
export interface SecretReader {
  /** false with `--read-secrets=false`: nothing may be read, and a setting that needs a Secret throws notRead(). */
  readonly allowed: boolean;
  /**
   * One key of a Secret in the TaskQueue's namespace, decoded and recorded for scrubbing (each Secret is
   * read once per reconcile); SecretNotFound naming `field` when it is missing, InvalidSecretValue when
   * `problem` finds the value wrong, in words that never quote it.
   */
  key(ref: SecretKeySelector, field: string, problem: (value: string) => string | undefined): Promise<string>;
  /** The error of a setting at `field` that needs a Secret, when none may be read; `instead` says what to do. */
  notRead(field: string, instead: string): Error;
}

/** What resolving a connection's target takes: the queue, where the connection is in the spec, its Secrets. */
export interface TargetRequest {
  queue: string;
  field: string;
  secrets: SecretReader;
}

/**
 * A broker as the operator sees it: its connection in spec.broker (`Spec`, the schema of the CRD and,
 * through Static, the type), and `Target`, what it probes.
 */
export interface OperatorBroker<Spec extends TSchema, Target> {
  /** The worker's definition of the broker: its name and what it can do (schedules, chords). */
  readonly worker: BrokerDefinition;
  /** The connection's schema, under spec.broker.<its field> in the CRD. */
  readonly spec: Spec;
  readonly probe: BrokerProbe<Target>;
  /** Where a queue on this connection is, with what its settings take from Secrets read. */
  target(spec: Static<Spec>, request: TargetRequest): Promise<Target>;
  /** The worker container's variables (and volume) for this connection; `field` is where it is in the spec. */
  workerSettings(spec: Static<Spec>, field: string): WorkerBrokerSettings;
  /**
   * The object names and Secret keys the connection gives, which the reconciler checks (a TaskQueue
   * admitted under an older CRD may hold `../..`) before it reads or sends anything for them.
   */
  namedReferences(spec: Static<Spec>, field: string): NamedReference[];
}
