/**
 * The TaskQueue CRD, built from one place: this file describes the types of types.ts as OpenAPI v3
 * with descriptions, defaults, bounds and CEL rules, so the API server itself rejects bad specs.
 * `make crds` writes it to crds/; the lint step fails when crds/ has drifted from it.
 */
import { DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX_LENGTH, SECRET_KEY, SECRET_KEY_MAX_LENGTH } from './names.ts';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from './types.ts';

type Schema = Record<string, unknown>;

const integer = (description: string, bounds: { min?: number; max?: number; default?: number } = {}): Schema => ({
  type: 'integer',
  description,
  ...(bounds.min !== undefined ? { minimum: bounds.min } : {}),
  ...(bounds.max !== undefined ? { maximum: bounds.max } : {}),
  ...(bounds.default !== undefined ? { default: bounds.default } : {}),
});

const string = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });

const object = (description: string, properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: 'object',
  description,
  properties,
  ...extra,
});

/**
 * The name of an object in the TaskQueue's namespace, as the API server validates names: a DNS-1123
 * subdomain. The operator puts it into a request path, so nothing else (`/`, `..`) may pass.
 */
const objectName = (description: string): Schema =>
  string(`${description} A DNS-1123 subdomain, at most 253 characters.`, {
    minLength: 1,
    maxLength: DNS1123_SUBDOMAIN_MAX_LENGTH,
    pattern: DNS1123_SUBDOMAIN,
  });

const secretKeyRef = object(
  'A key of a Secret in the TaskQueue’s namespace. The operator passes it to workers by reference; its value is never copied into the Deployment.',
  {
    secretKeyRef: object(
      'The Secret and key.',
      {
        name: objectName('Name of the Secret, in the TaskQueue’s namespace.'),
        key: string('Key in the Secret: letters, digits, -, _ and ., at most 253 characters.', {
          minLength: 1,
          maxLength: SECRET_KEY_MAX_LENGTH,
          pattern: SECRET_KEY,
        }),
      },
      { required: ['name', 'key'] },
    ),
  },
  { required: ['secretKeyRef'] },
);

/** Query parameters that carry credentials, as the redaction of 'taskfleet' masks them. */
const CREDENTIAL_PARAMS = 'password|pass|passwd|pwd|secret|token|access_token|auth|apikey|api_key|key|sasl_password';

const redisConnection = (what: string): Schema =>
  object(
    `${what} on Redis. Set exactly one of url and urlFrom.`,
    {
      url: string(
        'redis:// or rediss:// URL, without credentials: it is in the TaskQueue, which anyone with view on the namespace reads. Put a URL with a password in a Secret and use urlFrom.',
        { pattern: '^rediss?://', maxLength: 2048 },
      ),
      urlFrom: secretKeyRef,
      prefix: string('Prefix of the Redis keys the workers use.', {
        default: 'tf',
        pattern: '^[A-Za-z0-9_.:-]{1,64}$',
      }),
    },
    {
      'x-kubernetes-validations': [
        { rule: 'has(self.url) != has(self.urlFrom)', message: 'set exactly one of url and urlFrom' },
        // On the connection, not on url itself: the API server's error then shows "object", not the URL —
        // which would put the password into kubectl's output, CI logs and audit logs.
        {
          // A user name alone is refused too: a lone userinfo (redis://s3cret@host) is a password to Redis.
          rule: "!has(self.url) || !self.url.matches('^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@')",
          fieldPath: '.url',
          message:
            'the URL carries credentials (user information before @): put the URL in a Secret and set urlFrom instead of url',
        },
        {
          rule: `!has(self.url) || !self.url.matches('(?i)[?&](${CREDENTIAL_PARAMS})=')`,
          fieldPath: '.url',
          message:
            'the URL carries credentials (a password= or token= query parameter): put the URL in a Secret and set urlFrom instead of url',
        },
      ],
    },
  );

/** host:port, as the workers' Kafka URL parser accepts it (a name or IPv4, or an IPv6 in brackets). */
const HOST_PORT =
  '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';

const kafkaConnection = object(
  'The broker on Kafka. Per queue the workers use the topics <prefix>.<queue> (calls due now), <prefix>.<queue>.delay and <prefix>.<queue>.dead, and the consumer group <prefix>.<queue>; the operator scales on the group’s lag and caps the replicas at the topic’s partitions.',
  {
    brokers: {
      type: 'array',
      description: 'Bootstrap addresses of the Kafka cluster, host:port each.',
      minItems: 1,
      maxItems: 100,
      items: string('host:port of a Kafka broker.', { pattern: HOST_PORT, maxLength: 260 }),
    },
    partitions: integer(
      'Partitions of the topics the workers create when they are missing. Topics that exist keep theirs: the operator caps the replicas at the partitions it finds.',
      { min: 1, max: 10000, default: 12 },
    ),
    replicationFactor: integer(
      'Replicas of each partition of the topics the workers create. Unset: the cluster’s default.',
      { min: 1, max: 100 },
    ),
    prefix: string('Prefix of the topic and consumer group names the workers use.', {
      default: 'tf',
      pattern: '^[A-Za-z0-9._-]{1,64}$',
    }),
    allowIdleConsumers: {
      type: 'boolean',
      description:
        'Allow more replicas than the topic has partitions. Kafka gives each partition to one consumer of the group, so the extra replicas sit idle (KEDA’s allowIdleConsumers).',
      default: false,
    },
    tls: object(
      'TLS to the brokers. The CA, certificate and key are mounted into the workers from their Secrets.',
      {
        enabled: { type: 'boolean', description: 'Connect with TLS.' },
        caFrom: {
          ...secretKeyRef,
          description: 'The CA certificates (PEM) to trust, from a Secret key. Unset: the system’s CAs.',
        },
        certFrom: {
          ...secretKeyRef,
          description: 'A client certificate (PEM), for mutual TLS, from a Secret key. Set with keyFrom.',
        },
        keyFrom: {
          ...secretKeyRef,
          description: 'The client certificate’s private key (PEM), from a Secret key. Set with certFrom.',
        },
      },
      {
        required: ['enabled'],
        'x-kubernetes-validations': [
          { rule: 'has(self.certFrom) == has(self.keyFrom)', message: 'set both certFrom and keyFrom, or neither' },
          {
            rule: 'self.enabled || !(has(self.caFrom) || has(self.certFrom) || has(self.keyFrom))',
            message: 'caFrom, certFrom and keyFrom need enabled: true',
          },
        ],
      },
    ),
    sasl: object(
      'SASL authentication. The username and password reach the workers as secretKeyRef environment variables, never as values.',
      {
        mechanism: string('The SASL mechanism.', { enum: ['plain', 'scram-sha-256', 'scram-sha-512'] }),
        secretRef: object(
          'A Secret in the TaskQueue’s namespace with the keys username and password.',
          { name: objectName('Name of the Secret.') },
          { required: ['name'] },
        ),
      },
      { required: ['mechanism', 'secretRef'] },
    ),
  },
  { required: ['brokers'] },
);

const scalingRules = (direction: 'up' | 'down', defaults: { stabilization: number }): Schema =>
  object(
    `How fast to scale ${direction}, as the HorizontalPodAutoscaler's behavior.scale${direction === 'up' ? 'Up' : 'Down'}.`,
    {
      stabilizationSeconds: integer(
        direction === 'up'
          ? 'Scale up only to the lowest recommendation seen within this window (damps spikes).'
          : 'Scale down only to the highest recommendation seen within this window (avoids flapping).',
        { min: 0, max: 3600, default: defaults.stabilization },
      ),
      policies: {
        type: 'array',
        description: `Limits on how much to scale ${direction} per period. Unset: the HPA defaults.`,
        maxItems: 10,
        items: object(
          'One limit.',
          {
            type: string('Pods: a number of pods; Percent: a percentage of the replicas at the start of the period.', {
              enum: ['Pods', 'Percent'],
            }),
            value: integer('How many pods, or what percentage.', { min: 1 }),
            periodSeconds: integer('The period the limit applies to.', { min: 1, max: 1800 }),
          },
          { required: ['type', 'value', 'periodSeconds'] },
        ),
      },
      selectPolicy: string(
        'With several policies: the one allowing the most change (Max), the least (Min), or none (Disabled).',
        {
          enum: ['Max', 'Min', 'Disabled'],
          default: 'Max',
        },
      ),
    },
  );

const scaling = object(
  'How the operator sizes the worker fleet from the broker’s backlog and rates.',
  {
    minReplicas: integer('Fewest replicas. 0 lets an idle queue scale to zero.', { min: 0, max: 10000, default: 0 }),
    maxReplicas: integer('Most replicas.', { min: 1, max: 10000, default: 10 }),
    pollIntervalSeconds: integer('How often the broker is probed and the decision made.', {
      min: 1,
      max: 300,
      default: 2,
    }),
    targetBacklogPerReplica: integer(
      'Backlog one replica should carry: replicas = ceil(backlog / target), as KEDA. Used until rates are known, and always when targetDrainSeconds is unset.',
      { min: 1, default: 100 },
    ),
    targetDrainSeconds: integer(
      'Throughput-aware mode: enough replicas to serve arrivals and drain the backlog within this many seconds, from measured completion rates.',
      { min: 1, max: 86400 },
    ),
    activationBacklog: integer('A queue at zero replicas stays at zero until its backlog exceeds this.', {
      min: 0,
      default: 0,
    }),
    idleSecondsBeforeZero: integer(
      'Scale to zero only after the queue has been idle (no backlog, nothing in flight) this long.',
      {
        min: 0,
        max: 86400,
        default: 120,
      },
    ),
    tolerance: {
      type: 'number',
      description: 'Changes smaller than this fraction of the current replicas are ignored.',
      minimum: 0,
      maximum: 1,
      default: 0.1,
    },
    scaleUp: scalingRules('up', { stabilization: 0 }),
    scaleDown: scalingRules('down', { stabilization: 120 }),
    fallback: object(
      'Replicas to run while the broker cannot be probed — from zero too.',
      {
        replicas: integer('Replicas while in fallback.', { min: 0 }),
        afterFailures: integer('Consecutive failed probes before fallback.', { min: 1, max: 100, default: 3 }),
      },
      { required: ['replicas'] },
    ),
    paused: {
      type: 'boolean',
      description: 'Keep the replicas as they are; probing and status go on.',
      default: false,
    },
    spareBusyWorkers: {
      type: 'boolean',
      description:
        'Before scaling down, mark pods with their in-flight calls (pod-deletion-cost) so idle pods are removed first.',
      default: true,
    },
  },
  {
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

const worker = object(
  'A worker Deployment the operator creates and owns. The operator adds the broker settings (TASKFLEET_* env), probes, the metrics port and secure defaults to the template.',
  {
    template: {
      type: 'object',
      description: 'A pod template (as in a Deployment). Its first container runs the worker.',
      'x-kubernetes-preserve-unknown-fields': true,
    },
    concurrency: integer('Calls each worker runs at once.', { min: 1, max: 10000, default: 16 }),
    prefetch: integer('Calls each worker fetches ahead of free slots. Unset: equal to concurrency.', {
      min: 0,
      max: 10000,
    }),
    terminationGracePeriodSeconds: integer(
      'How long a terminating worker may finish its running calls; the worker’s shutdown grace is set a little shorter.',
      { min: 1, max: 86400, default: 300 },
    ),
    metricsPort: integer('Port of /metrics, /healthz and /readyz in the worker.', {
      min: 1,
      max: 65535,
      default: 9090,
    }),
  },
  { required: ['template'] },
);

const schedules: Schema = {
  type: 'array',
  description:
    'Periodic tasks the operator fires into this queue, from its leader only: each tick exactly once, even across a failover (the same scheduler as `taskfleet beat`).',
  maxItems: 100,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['name'],
  items: object(
    'One schedule. Set exactly one of cron and everySeconds.',
    {
      name: string('Unique within the TaskQueue; part of each fired call’s id (<name>@<tick>).', {
        pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$',
      }),
      cron: string(
        'Five fields (minute hour day-of-month month day-of-week), six with seconds first, or @daily, @hourly….',
      ),
      timeZone: string('IANA time zone the cron fields are read in, DST included.', { default: 'UTC' }),
      everySeconds: integer('Seconds between ticks; ticks fall on multiples of it since the Unix epoch.', {
        min: 1,
        max: 31536000,
      }),
      task: string('The registered task name to call.', { minLength: 1 }),
      args: {
        type: 'array',
        description: 'Its arguments (JSON).',
        items: { 'x-kubernetes-preserve-unknown-fields': true },
      },
      missed: string('Ticks missed while no operator ran: fire once for all of them, or skip them.', {
        enum: ['fire-once', 'skip'],
        default: 'fire-once',
      }),
    },
    {
      required: ['name', 'task'],
      'x-kubernetes-validations': [
        { rule: 'has(self.cron) != has(self.everySeconds)', message: 'set exactly one of cron and everySeconds' },
      ],
    },
  ),
};

const spec = object(
  'What the queue is, where its broker is, and how its workers scale.',
  {
    queue: string('The broker queue. Unset: the TaskQueue’s name.', { pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$' }),
    broker: object(
      'Where the tasks are. Set exactly one broker.',
      { redis: redisConnection('The broker'), kafka: kafkaConnection },
      {
        'x-kubernetes-validations': [
          {
            rule: '[has(self.redis), has(self.kafka)].filter(b, b).size() == 1',
            message: 'set exactly one broker (redis or kafka)',
          },
        ],
      },
    ),
    resultBackend: object('Where the workers store results. Unset: results are not stored.', {
      redis: redisConnection('The result backend'),
    }),
    worker,
    scaleTargetRef: object(
      'An existing Deployment to scale instead of a managed one. The operator changes only its replicas, through /scale.',
      {
        apiVersion: string('API version of the target.', { default: 'apps/v1', enum: ['apps/v1'] }),
        kind: string('Kind of the target.', { default: 'Deployment', enum: ['Deployment'] }),
        name: objectName('Name of the Deployment, in the TaskQueue’s namespace.'),
      },
      { required: ['name'] },
    ),
    scaling,
    schedules,
  },
  {
    required: ['broker'],
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

const condition = object(
  'A condition, as in every Kubernetes status.',
  {
    type: string('Ready, BrokerReachable, Active, ScalingLimited, Fallback or Paused.'),
    status: string('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    reason: string('One word, CamelCase.'),
    message: string('What happened, in words.'),
    lastTransitionTime: string('When status last changed.', { format: 'date-time' }),
    observedGeneration: integer('The generation the condition is about.'),
  },
  { required: ['type', 'status'] },
);

const status = object('What the operator observed and decided.', {
  observedGeneration: integer('The spec generation the status reflects.'),
  conditions: {
    type: 'array',
    description: 'Ready, BrokerReachable, Active, ScalingLimited, Fallback, Paused.',
    items: condition,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  },
  backlog: object('The queue at the last probe.', {
    ready: integer('Calls waiting to run now.'),
    delayed: integer('Calls waiting for a later time.'),
    inFlight: integer('Calls delivered and not finished.'),
  }),
  rates: object('Rates measured at the broker, per second.', {
    arrival: { type: 'number', description: 'Calls enqueued per second.' },
    completion: { type: 'number', description: 'Calls finished per second.' },
    perReplica: { type: 'number', description: 'Calls finished per second per ready replica, while busy.' },
  }),
  replicas: integer('Replicas of the worker Deployment.'),
  readyReplicas: integer('Ready replicas of the worker Deployment.'),
  desiredReplicas: integer('Replicas the last decision asked for.'),
  lastScaleTime: string('When replicas last changed.', { format: 'date-time' }),
  lastScaleReason: string('Why, in words.'),
  brokerKind: string('redis or kafka (a printer column).'),
  backlogTotal: integer('ready + delayed due + inFlight (a printer column).'),
  schedules: {
    type: 'array',
    description: 'Each schedule’s last and next fire.',
    items: object('A schedule’s state.', {
      name: string('The schedule.'),
      lastFire: string('The tick last fired.', { format: 'date-time' }),
      lastTaskId: string('The id of the call it fired.'),
      nextFire: string('The next tick.', { format: 'date-time' }),
      fires: integer('Ticks fired so far.'),
      missed: integer('Ticks missed (skipped or folded into one fire).'),
    }),
  },
});

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
          schema: {
            openAPIV3Schema: object(
              `A queue of Taskfleet tasks (${API_VERSION}) and the worker fleet that the operator scales from its backlog.`,
              { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec, status },
              { required: ['spec'] },
            ),
          },
        },
      ],
    },
  };
}
