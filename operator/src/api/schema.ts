/**
 * The TaskQueue API (taskfleet.dev/v1alpha1), written once: each TypeBox schema below is both the CRD's
 * OpenAPI v3 (descriptions, defaults, bounds and CEL rules, so the API server itself rejects bad specs)
 * and, through `Static`, the TypeScript type the operator reads. The broker connections come from the
 * broker registry (brokers/registry.ts: brokers/redis/spec.ts, brokers/kafka/spec.ts), the defaults from
 * api/defaults.ts. `make crds` writes crds/ from {@link taskQueueCrd} (api/generate-crds.ts); the lint
 * step fails when crds/ has drifted.
 */
import type { V1PodTemplateSpec } from '@kubernetes/client-node';
import Type, { type Static } from 'typebox';
import { redisConnection } from '../brokers/redis/spec.ts';
import { brokerFields, brokerSpecProperties } from '../brokers/registry.ts';
import { SCALE_TARGET_DEFAULTS, SCALING_DEFAULTS, SCHEDULE_DEFAULTS, WORKER_DEFAULTS } from './defaults.ts';
import { objectName, stringEnum } from './fragments.ts';
import { openApi } from './openapi.ts';

export const GROUP = 'taskfleet.dev';
export const VERSION = 'v1alpha1';
export const KIND = 'TaskQueue';
export const PLURAL = 'taskqueues';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Where the tasks are: exactly one broker, of those in brokers/registry.ts. */
export const BrokerSpec = Type.Object(brokerSpecProperties, {
  description: 'Where the tasks are. Set exactly one broker.',
  'x-kubernetes-validations': [
    {
      rule: `[${brokerFields.map((f) => `has(self.${f})`).join(', ')}].filter(b, b).size() == 1`,
      message: `set exactly one broker (${brokerFields.join(' or ')})`,
    },
  ],
});
export type BrokerSpec = Static<typeof BrokerSpec>;

/** One limit on how much to scale per period, as the HPA's `HPAScalingPolicy`. */
export const ScalingPolicy = Type.Object(
  {
    type: stringEnum({
      description: 'Pods: a number of pods; Percent: a percentage of the replicas at the start of the period.',
      enum: ['Pods', 'Percent'],
    }),
    value: Type.Integer({ description: 'How many pods, or what percentage.', minimum: 1 }),
    periodSeconds: Type.Integer({ description: 'The period the limit applies to.', minimum: 1, maximum: 1800 }),
  },
  { description: 'One limit.' },
);
export type ScalingPolicy = Static<typeof ScalingPolicy>;

/** How fast to scale one way, as the HPA's `HPAScalingRules`; each field defaults on its own. */
const scalingRules = (
  direction: 'up' | 'down',
  defaults: { stabilizationSeconds: number; selectPolicy: 'Max' | 'Min' | 'Disabled' },
) =>
  Type.Object(
    {
      stabilizationSeconds: Type.Optional(
        Type.Integer({
          description:
            direction === 'up'
              ? 'Scale up only to the lowest recommendation seen within this window (damps spikes).'
              : 'Scale down only to the highest recommendation seen within this window (avoids flapping).',
          minimum: 0,
          maximum: 3600,
          default: defaults.stabilizationSeconds,
        }),
      ),
      policies: Type.Optional(
        Type.Array(ScalingPolicy, {
          description: `Limits on how much to scale ${direction} per period. Unset: the HPA defaults.`,
          maxItems: 10,
        }),
      ),
      selectPolicy: Type.Optional(
        stringEnum({
          description:
            'With several policies: the one allowing the most change (Max), the least (Min), or none (Disabled).',
          enum: ['Max', 'Min', 'Disabled'],
          default: defaults.selectPolicy,
        }),
      ),
    },
    {
      description: `How fast to scale ${direction}, as the HorizontalPodAutoscaler's behavior.scale${direction === 'up' ? 'Up' : 'Down'}.`,
    },
  );
export type ScalingRules = Static<ReturnType<typeof scalingRules>>;

/** How the operator sizes the worker fleet: scaling/policy.ts reads it through scaling/spec.ts. */
export const ScalingSpec = Type.Object(
  {
    minReplicas: Type.Optional(
      Type.Integer({
        description: 'Fewest replicas. 0 lets an idle queue scale to zero.',
        minimum: 0,
        maximum: 10000,
        default: SCALING_DEFAULTS.minReplicas,
      }),
    ),
    maxReplicas: Type.Optional(
      Type.Integer({
        description: 'Most replicas.',
        minimum: 1,
        maximum: 10000,
        default: SCALING_DEFAULTS.maxReplicas,
      }),
    ),
    pollIntervalSeconds: Type.Optional(
      Type.Integer({
        description: 'How often the broker is probed and the decision made.',
        minimum: 1,
        maximum: 300,
        default: SCALING_DEFAULTS.pollIntervalSeconds,
      }),
    ),
    targetBacklogPerReplica: Type.Optional(
      Type.Integer({
        description:
          'Backlog one replica should carry: replicas = ceil(backlog / target), as KEDA. Used until rates are known, and always when targetDrainSeconds is unset.',
        minimum: 1,
        default: SCALING_DEFAULTS.targetBacklogPerReplica,
      }),
    ),
    targetDrainSeconds: Type.Optional(
      Type.Integer({
        description:
          'Throughput-aware mode: enough replicas to serve arrivals and drain the backlog within this many seconds, from measured completion rates.',
        minimum: 1,
        maximum: 86400,
      }),
    ),
    activationBacklog: Type.Optional(
      Type.Integer({
        description: 'A queue at zero replicas stays at zero until its backlog exceeds this.',
        minimum: 0,
        default: SCALING_DEFAULTS.activationBacklog,
      }),
    ),
    idleSecondsBeforeZero: Type.Optional(
      Type.Integer({
        description: 'Scale to zero only after the queue has been idle (no backlog, nothing in flight) this long.',
        minimum: 0,
        maximum: 86400,
        default: SCALING_DEFAULTS.idleSecondsBeforeZero,
      }),
    ),
    tolerance: Type.Optional(
      Type.Number({
        description: 'Changes smaller than this fraction of the current replicas are ignored.',
        minimum: 0,
        maximum: 1,
        default: SCALING_DEFAULTS.tolerance,
      }),
    ),
    scaleUp: Type.Optional(scalingRules('up', SCALING_DEFAULTS.scaleUp)),
    scaleDown: Type.Optional(scalingRules('down', SCALING_DEFAULTS.scaleDown)),
    fallback: Type.Optional(
      Type.Object(
        {
          replicas: Type.Integer({ description: 'Replicas while in fallback.', minimum: 0 }),
          afterFailures: Type.Optional(
            Type.Integer({
              description: 'Consecutive failed probes before fallback.',
              minimum: 1,
              maximum: 100,
              default: SCALING_DEFAULTS.fallback.afterFailures,
            }),
          ),
        },
        { description: 'Replicas to run while the broker cannot be probed — from zero too.' },
      ),
    ),
    paused: Type.Optional(
      Type.Boolean({
        description: 'Keep the replicas as they are; probing and status go on.',
        default: SCALING_DEFAULTS.paused,
      }),
    ),
    spareBusyWorkers: Type.Optional(
      Type.Boolean({
        description:
          'Before scaling down, mark pods with their in-flight calls (pod-deletion-cost) so idle pods are removed first.',
        default: SCALING_DEFAULTS.spareBusyWorkers,
      }),
    ),
  },
  {
    description: 'How the operator sizes the worker fleet from the broker’s backlog and rates.',
    default: {},
    'x-kubernetes-validations': [
      // has() guards: the rule also runs on the `{}` default itself, before nested defaults fill it.
      {
        rule: '!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas',
        message: 'minReplicas must not exceed maxReplicas',
      },
      {
        rule: '!has(self.fallback) || !has(self.maxReplicas) || self.fallback.replicas <= self.maxReplicas',
        message: 'fallback.replicas must not exceed maxReplicas',
      },
    ],
  },
);
export type ScalingSpec = Static<typeof ScalingSpec>;

/** The worker Deployment the operator creates and owns (controller/deployment.ts builds it). */
export const WorkerSpec = Type.Object(
  {
    // The API server keeps the template as written (preserve-unknown-fields); its type is Kubernetes'.
    template: Type.Unsafe<V1PodTemplateSpec>({
      type: 'object',
      description: 'A pod template (as in a Deployment). Its first container runs the worker.',
      'x-kubernetes-preserve-unknown-fields': true,
    }),
    concurrency: Type.Optional(
      Type.Integer({
        description: 'Calls each worker runs at once.',
        minimum: 1,
        maximum: 10000,
        default: WORKER_DEFAULTS.concurrency,
      }),
    ),
    prefetch: Type.Optional(
      Type.Integer({
        description: 'Calls each worker fetches ahead of free slots. Unset: equal to concurrency.',
        minimum: 0,
        maximum: 10000,
      }),
    ),
    terminationGracePeriodSeconds: Type.Optional(
      Type.Integer({
        description:
          'How long a terminating worker may finish its running calls; the worker’s shutdown grace is set a little shorter.',
        minimum: 1,
        maximum: 86400,
        default: WORKER_DEFAULTS.terminationGracePeriodSeconds,
      }),
    ),
    metricsPort: Type.Optional(
      Type.Integer({
        description: 'Port of /metrics, /healthz and /readyz in the worker.',
        minimum: 1,
        maximum: 65535,
        default: WORKER_DEFAULTS.metricsPort,
      }),
    ),
  },
  {
    description:
      'A worker Deployment the operator creates and owns. The operator adds the broker settings (TASKFLEET_* env), probes, the metrics port and secure defaults to the template.',
  },
);
export type WorkerSpec = Static<typeof WorkerSpec>;

/** A periodic task fired into this queue by the operator's leader (the same scheduler as `taskfleet beat`). */
export const TaskQueueSchedule = Type.Object(
  {
    name: Type.String({
      description: 'Unique within the TaskQueue; part of each fired call’s id (<name>@<tick>).',
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$',
    }),
    cron: Type.Optional(
      Type.String({
        description:
          'Five fields (minute hour day-of-month month day-of-week), six with seconds first, or @daily, @hourly….',
      }),
    ),
    timeZone: Type.Optional(
      Type.String({
        description: 'IANA time zone the cron fields are read in, DST included.',
        default: SCHEDULE_DEFAULTS.timeZone,
      }),
    ),
    everySeconds: Type.Optional(
      Type.Integer({
        description: 'Seconds between ticks; ticks fall on multiples of it since the Unix epoch.',
        minimum: 1,
        maximum: 31536000,
      }),
    ),
    task: Type.String({ description: 'The registered task name to call.', minLength: 1 }),
    args: Type.Optional(
      Type.Array(Type.Unknown({ 'x-kubernetes-preserve-unknown-fields': true }), {
        description: 'Its arguments (JSON).',
      }),
    ),
    missed: Type.Optional(
      stringEnum({
        description: 'Ticks missed while no operator ran: fire once for all of them, or skip them.',
        enum: ['fire-once', 'skip'],
        default: SCHEDULE_DEFAULTS.missed,
      }),
    ),
  },
  {
    description: 'One schedule. Set exactly one of cron and everySeconds.',
    'x-kubernetes-validations': [
      { rule: 'has(self.cron) != has(self.everySeconds)', message: 'set exactly one of cron and everySeconds' },
    ],
  },
);
export type TaskQueueSchedule = Static<typeof TaskQueueSchedule>;

/** What the queue is, where its broker is, and how its workers scale. */
export const TaskQueueSpec = Type.Object(
  {
    queue: Type.Optional(
      Type.String({
        description: 'The broker queue. Unset: the TaskQueue’s name.',
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$',
      }),
    ),
    broker: BrokerSpec,
    resultBackend: Type.Optional(
      Type.Object(
        { redis: Type.Optional(redisConnection('The result backend')) },
        { description: 'Where the workers store results. Unset: results are not stored.' },
      ),
    ),
    worker: Type.Optional(WorkerSpec),
    scaleTargetRef: Type.Optional(
      Type.Object(
        {
          apiVersion: Type.Optional(
            stringEnum({
              description: 'API version of the target.',
              default: SCALE_TARGET_DEFAULTS.apiVersion,
              enum: ['apps/v1'],
            }),
          ),
          kind: Type.Optional(
            stringEnum({
              description: 'Kind of the target.',
              default: SCALE_TARGET_DEFAULTS.kind,
              enum: ['Deployment'],
            }),
          ),
          name: objectName('Name of the Deployment, in the TaskQueue’s namespace.'),
        },
        {
          description:
            'An existing Deployment to scale instead of a managed one. The operator changes only its replicas, through /scale.',
        },
      ),
    ),
    scaling: Type.Optional(ScalingSpec),
    schedules: Type.Optional(
      Type.Array(TaskQueueSchedule, {
        description:
          'Periodic tasks the operator fires into this queue, from its leader only: each tick exactly once, even across a failover (the same scheduler as `taskfleet beat`).',
        maxItems: 100,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      }),
    ),
  },
  {
    description: 'What the queue is, where its broker is, and how its workers scale.',
    'x-kubernetes-validations': [
      {
        rule: 'has(self.worker) != has(self.scaleTargetRef)',
        message:
          'set exactly one of worker (a Deployment the operator manages) and scaleTargetRef (an existing Deployment)',
      },
      {
        rule: "!has(self.broker.kafka) || !has(self.queue) || self.queue.matches('^[A-Za-z0-9._-]+$')",
        message: 'a Kafka queue names topics: use letters, digits, ., _ and - only',
      },
      {
        rule: '!has(self.broker.kafka) || !has(self.schedules) || size(self.schedules) == 0',
        message:
          'schedules need a Redis broker: each tick is recorded and enqueued in one Redis transaction, which Kafka cannot join (docs/operator.md#schedules)',
      },
    ],
  },
);
export type TaskQueueSpec = Static<typeof TaskQueueSpec>;

/** The conditions the operator sets, in the order it lists them. */
export const CONDITION_TYPES = ['Ready', 'BrokerReachable', 'Active', 'ScalingLimited', 'Fallback', 'Paused'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];

/**
 * A condition, as in every Kubernetes status. Its type is any string: the operator sets only
 * {@link ConditionType}s, and keeps the conditions another writer set.
 */
export const Condition = Type.Object(
  {
    type: Type.String({ description: `${CONDITION_TYPES.slice(0, -1).join(', ')} or ${CONDITION_TYPES.at(-1)}.` }),
    status: stringEnum({ description: 'True, False or Unknown.', enum: ['True', 'False', 'Unknown'] }),
    reason: Type.Optional(Type.String({ description: 'One word, CamelCase.' })),
    message: Type.Optional(Type.String({ description: 'What happened, in words.' })),
    lastTransitionTime: Type.Optional(Type.String({ description: 'When status last changed.', format: 'date-time' })),
    observedGeneration: Type.Optional(Type.Integer({ description: 'The generation the condition is about.' })),
  },
  { description: 'A condition, as in every Kubernetes status.' },
);
export type Condition = Static<typeof Condition>;

/** What the operator observed and decided; nothing in it is required, as the API server admits it. */
export const TaskQueueStatus = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ description: 'The spec generation the status reflects.' })),
    conditions: Type.Optional(
      Type.Array(Condition, {
        description: `${CONDITION_TYPES.join(', ')}.`,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
    backlog: Type.Optional(
      Type.Object(
        {
          ready: Type.Optional(Type.Integer({ description: 'Calls waiting to run now.' })),
          delayed: Type.Optional(Type.Integer({ description: 'Calls waiting for a later time.' })),
          inFlight: Type.Optional(Type.Integer({ description: 'Calls delivered and not finished.' })),
        },
        { description: 'The queue at the last probe.' },
      ),
    ),
    rates: Type.Optional(
      Type.Object(
        {
          arrival: Type.Optional(Type.Number({ description: 'Calls enqueued per second.' })),
          completion: Type.Optional(Type.Number({ description: 'Calls finished per second.' })),
          perReplica: Type.Optional(
            Type.Number({ description: 'Calls finished per second per ready replica, while busy.' }),
          ),
        },
        { description: 'Rates measured at the broker, per second.' },
      ),
    ),
    replicas: Type.Optional(Type.Integer({ description: 'Replicas of the worker Deployment.' })),
    readyReplicas: Type.Optional(Type.Integer({ description: 'Ready replicas of the worker Deployment.' })),
    desiredReplicas: Type.Optional(Type.Integer({ description: 'Replicas the last decision asked for.' })),
    lastScaleTime: Type.Optional(Type.String({ description: 'When replicas last changed.', format: 'date-time' })),
    lastScaleReason: Type.Optional(Type.String({ description: 'Why, in words.' })),
    brokerKind: Type.Optional(Type.String({ description: 'redis or kafka (a printer column).' })),
    backlogTotal: Type.Optional(Type.Integer({ description: 'ready + delayed due + inFlight (a printer column).' })),
    schedules: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.Optional(Type.String({ description: 'The schedule.' })),
            lastFire: Type.Optional(Type.String({ description: 'The tick last fired.', format: 'date-time' })),
            lastTaskId: Type.Optional(Type.String({ description: 'The id of the call it fired.' })),
            nextFire: Type.Optional(Type.String({ description: 'The next tick.', format: 'date-time' })),
            fires: Type.Optional(Type.Integer({ description: 'Ticks fired so far.' })),
            missed: Type.Optional(Type.Integer({ description: 'Ticks missed (skipped or folded into one fire).' })),
          },
          { description: 'A schedule’s state.' },
        ),
        { description: 'Each schedule’s last and next fire.' },
      ),
    ),
  },
  { description: 'What the operator observed and decided.' },
);
export type TaskQueueStatus = Static<typeof TaskQueueStatus>;

/** The metadata of a TaskQueue as the API server serves it: the fields the operator reads, and the rest. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  [k: string]: unknown;
}

/**
 * A TaskQueue. The API server serves every one with apiVersion, kind and metadata, so the type has them;
 * it checks them itself, and a client may leave apiVersion and kind to kubectl, so the CRD requires only
 * spec, and says no more of metadata than that it is an object.
 */
export const TaskQueue = Type.Object(
  {
    apiVersion: Type.Unsafe<typeof API_VERSION>({ type: 'string' }),
    kind: Type.Unsafe<typeof KIND>({ type: 'string' }),
    metadata: Type.Unsafe<ObjectMeta>({ type: 'object' }),
    spec: TaskQueueSpec,
    status: Type.Optional(TaskQueueStatus),
  },
  {
    description: `A queue of Taskfleet tasks (${API_VERSION}) and the worker fleet that the operator scales from its backlog.`,
    required: ['spec'],
  },
);
export type TaskQueue = Static<typeof TaskQueue>;

/** The CustomResourceDefinition object. */
export function taskQueueCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        plural: PLURAL,
        singular: 'taskqueue',
        kind: KIND,
        listKind: `${KIND}List`,
        shortNames: ['tq'],
        categories: ['taskfleet'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Broker', type: 'string', jsonPath: '.status.brokerKind' },
            { name: 'Backlog', type: 'integer', jsonPath: '.status.backlogTotal' },
            { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
            { name: 'Desired', type: 'integer', jsonPath: '.status.desiredReplicas' },
            {
              name: 'Rate',
              type: 'number',
              jsonPath: '.status.rates.arrival',
              description: 'Calls enqueued per second',
            },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: openApi(TaskQueue) },
        },
      ],
    },
  };
}
