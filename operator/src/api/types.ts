/**
 * The TaskQueue API (taskfleet.dev/v1alpha1): the one typed source of the CRD. `schema.ts` describes
 * these same types as OpenAPI with descriptions, defaults, bounds and CEL rules; `make crds` writes
 * crds/ from it.
 */
import type { V1PodTemplateSpec } from '@kubernetes/client-node';

export const GROUP = 'taskfleet.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'TaskQueue';
export const PLURAL = 'taskqueues';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A value given inline or read from a Secret, never both. */
export interface SecretValue {
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

export interface RedisConnection {
  /** redis:// or rediss:// URL, inline (no password in it) or from a Secret. */
  url?: string;
  urlFrom?: { secretKeyRef: { name: string; key: string } };
  /** Key prefix the workers use. @defaultValue 'tf' */
  prefix?: string;
}

/** A key of a Secret in the TaskQueue's namespace. */
export interface SecretKeySelector {
  secretKeyRef: { name: string; key: string };
}

export interface KafkaTls {
  /** Connect with TLS (the workers get a kafkas:// URL). */
  enabled: boolean;
  /** PEM of the CA(s) to trust. Unset: the system's CAs. */
  caFrom?: SecretKeySelector;
  /** Client certificate (PEM), for mutual TLS; set with keyFrom. */
  certFrom?: SecretKeySelector;
  /** The client certificate's private key (PEM). */
  keyFrom?: SecretKeySelector;
}

export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export interface KafkaSasl {
  mechanism: KafkaSaslMechanism;
  /** A Secret in the TaskQueue's namespace with the keys `username` and `password`. */
  secretRef: { name: string };
}

/**
 * A Kafka cluster. Per queue the workers use the topics `<prefix>.<queue>` (tasks due now), `.delay`
 * and `.dead`, and the consumer group `<prefix>.<queue>`.
 */
export interface KafkaConnection {
  /** Bootstrap addresses, `host:port` each. */
  brokers: string[];
  /** Partitions of the topics the workers create (existing topics keep theirs). @defaultValue 12 */
  partitions?: number;
  /** Replicas of each partition of the topics the workers create. @defaultValue the cluster's default */
  replicationFactor?: number;
  /** Prefix of the topic and group names. @defaultValue 'tf' */
  prefix?: string;
  /** Allow more replicas than the topic has partitions (the extra consumers sit idle). @defaultValue false */
  allowIdleConsumers?: boolean;
  tls?: KafkaTls;
  sasl?: KafkaSasl;
}

export interface BrokerSpec {
  redis?: RedisConnection;
  kafka?: KafkaConnection;
}

export interface ScalingPolicy {
  /** Pods or Percent of current replicas. */
  type: 'Pods' | 'Percent';
  value: number;
  periodSeconds: number;
}

export interface ScalingRules {
  /** Highest (up) or lowest (down) recommendation within this window wins. */
  stabilizationSeconds?: number;
  policies?: ScalingPolicy[];
  /** Which policy limit applies when several do. @defaultValue 'Max' */
  selectPolicy?: 'Max' | 'Min' | 'Disabled';
}

export interface ScalingSpec {
  /** @defaultValue 0 */
  minReplicas?: number;
  /** @defaultValue 10 */
  maxReplicas?: number;
  /** @defaultValue 2 */
  pollIntervalSeconds?: number;
  /** KEDA-like: replicas = ceil(backlog / target). @defaultValue 100 */
  targetBacklogPerReplica?: number;
  /** Throughput-aware: serve arrivals and drain the backlog within this many seconds. */
  targetDrainSeconds?: number;
  /** Below this backlog an idle queue stays at zero. @defaultValue 0 */
  activationBacklog?: number;
  /** Scale to zero only after the queue has been idle this long. @defaultValue 120 */
  idleSecondsBeforeZero?: number;
  /** Ignore changes smaller than this fraction. @defaultValue 0.1 */
  tolerance?: number;
  scaleUp?: ScalingRules;
  scaleDown?: ScalingRules;
  fallback?: { replicas: number; afterFailures?: number };
  /** Keep replicas as they are. @defaultValue false */
  paused?: boolean;
  /** Before scaling down, rank pods by in-flight calls so the idle ones go first. @defaultValue true */
  spareBusyWorkers?: boolean;
}

export interface WorkerSpec {
  template: V1PodTemplateSpec;
  /** @defaultValue 16 */
  concurrency?: number;
  prefetch?: number;
  /** @defaultValue 300 */
  terminationGracePeriodSeconds?: number;
  /** @defaultValue 9090 */
  metricsPort?: number;
}

/** A periodic task fired into this queue by the operator's leader (the same scheduler as `taskfleet beat`). */
export interface TaskQueueSchedule {
  name: string;
  /** Five fields, or six with seconds first; or @daily, @hourly… */
  cron?: string;
  /** IANA time zone the cron is read in. @defaultValue 'UTC' */
  timeZone?: string;
  /** Seconds between ticks (instead of cron). */
  everySeconds?: number;
  /** The registered task name the workers run. */
  task: string;
  args?: unknown[];
  /** Ticks missed while no operator ran: fire once for all of them, or skip them. @defaultValue 'fire-once' */
  missed?: 'fire-once' | 'skip';
}

export interface TaskQueueSpec {
  /** The broker queue; @defaultValue the TaskQueue's name */
  queue?: string;
  broker: BrokerSpec;
  resultBackend?: { redis?: RedisConnection };
  worker?: WorkerSpec;
  scaleTargetRef?: { apiVersion?: string; kind?: 'Deployment'; name: string };
  scaling?: ScalingSpec;
  schedules?: TaskQueueSchedule[];
}

export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionType = 'Ready' | 'BrokerReachable' | 'Active' | 'ScalingLimited' | 'Fallback' | 'Paused';

export interface TaskQueueStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  backlog?: { ready: number; delayed: number; inFlight: number };
  rates?: { arrival?: number; completion?: number; perReplica?: number };
  replicas?: number;
  readyReplicas?: number;
  desiredReplicas?: number;
  lastScaleTime?: string;
  lastScaleReason?: string;
  schedules?: {
    name: string;
    lastFire?: string;
    lastTaskId?: string;
    nextFire?: string;
    fires: number;
    missed: number;
  }[];
  /** Printer-column friendly summaries. */
  brokerKind?: string;
  backlogTotal?: number;
}

export interface TaskQueue {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    [k: string]: unknown;
  };
  spec: TaskQueueSpec;
  status?: TaskQueueStatus;
}
