import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Container, V1Deployment, V1EnvVar, V1PodSpec, V1PodTemplateSpec } from '@kubernetes/client-node';
import { TaskfleetError } from 'taskfleet';
import type { KafkaConnection, TaskQueue, TaskQueueSpec, WorkerSpec } from '../api/types.ts';
import { KAFKA_TLS_DIR, KAFKA_TLS_VOLUME } from '../brokers/kafka/worker-settings.ts';
import {
  buildWorkerDeployment,
  DEFAULT_WORKER_RESOURCES,
  FIELD_MANAGER,
  shutdownGraceMs,
  workerDeploymentName,
  workerLabels,
  workerSelectorLabels,
} from './deployment.ts';
import { TaskQueueSpecError } from './errors.ts';

const UID = '6f0c5a52-1d3e-4c59-9a0a-0b4f3e2f7a11';

function workerContainer(extra: Partial<V1Container> = {}): V1Container {
  return {
    name: 'worker',
    image: 'registry.example/emails:1.4.2',
    command: ['taskfleet', 'worker', '--app', './dist/tasks.js'],
    ...extra,
  };
}

/** A TaskQueue as read from the API server; `worker` and `spec` override parts of it. */
function taskQueue(
  options: {
    name?: string;
    spec?: Partial<TaskQueueSpec>;
    worker?: Partial<WorkerSpec>;
    podSpec?: Partial<V1PodSpec>;
    container?: Partial<V1Container>;
    templateMetadata?: V1PodTemplateSpec['metadata'];
  } = {},
): TaskQueue {
  const template: V1PodTemplateSpec = {
    ...(options.templateMetadata ? { metadata: options.templateMetadata } : {}),
    spec: { containers: [workerContainer(options.container)], ...options.podSpec },
  };
  return {
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: options.name ?? 'emails', namespace: 'shop', uid: UID, generation: 3 },
    spec: {
      broker: { redis: { url: 'redis://redis.shop:6379/0' } },
      worker: { template, ...options.worker },
      ...options.spec,
    },
  };
}

function podSpecOf(d: V1Deployment): V1PodSpec {
  const spec = d.spec?.template.spec;
  assert.ok(spec, 'the Deployment has a pod spec');
  return spec;
}

function workerOf(d: V1Deployment): V1Container {
  const first = podSpecOf(d).containers[0];
  assert.ok(first, 'the pod has a first container');
  return first;
}

function envOf(d: V1Deployment): V1EnvVar[] {
  return workerOf(d).env ?? [];
}

function envVar(d: V1Deployment, name: string): V1EnvVar | undefined {
  const matches = envOf(d).filter((e) => e.name === name);
  assert.ok(matches.length <= 1, `${name} appears ${matches.length} times`);
  return matches[0];
}

/** Asserts that `fn` throws a TaskQueueSpecError about `field` whose message matches `message`. */
function assertSpecError(fn: () => unknown, field: string, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TaskQueueSpecError, `not a TaskQueueSpecError: ${error}`);
    assert.ok(error instanceof TaskfleetError);
    assert.equal(error.code, 'INVALID_SPEC');
    assert.equal(error.field, field);
    assert.match(error.message, message);
    return true;
  });
}

describe('naming, labels and ownership', () => {
  test('the Deployment is <name>-workers in the TaskQueue’s namespace', () => {
    assert.equal(workerDeploymentName('emails'), 'emails-workers');
    const d = buildWorkerDeployment(taskQueue());
    assert.equal(d.apiVersion, 'apps/v1');
    assert.equal(d.kind, 'Deployment');
    assert.equal(d.metadata?.name, 'emails-workers');
    assert.equal(d.metadata?.namespace, 'shop');
    assert.equal(FIELD_MANAGER, 'taskfleet');
  });

  test('Deployment and pods carry the four labels; the selector matches instance and queue', () => {
    const expected = {
      'app.kubernetes.io/name': 'taskfleet-worker',
      'app.kubernetes.io/instance': 'emails',
      'app.kubernetes.io/managed-by': 'taskfleet',
      'taskfleet.dev/queue': 'emails',
    };
    assert.deepEqual(workerLabels('emails'), expected);
    const d = buildWorkerDeployment(
      taskQueue({ templateMetadata: { labels: { team: 'growth', 'taskfleet.dev/queue': 'spoofed' } } }),
    );
    assert.deepEqual(d.metadata?.labels, expected);
    assert.deepEqual(d.spec?.selector, {
      matchLabels: { 'app.kubernetes.io/instance': 'emails', 'taskfleet.dev/queue': 'emails' },
    });
    // The user's pod labels are kept, but cannot break the selector.
    const podLabels: Record<string, string> = d.spec?.template.metadata?.labels ?? {};
    for (const [key, value] of Object.entries(d.spec?.selector.matchLabels ?? {})) {
      assert.equal(podLabels[key], value, `pod label ${key} matches the selector`);
    }
    assert.deepEqual(podLabels, { team: 'growth', ...expected });
  });

  test('the selector is the same whatever the spec says (it is immutable in apps/v1)', () => {
    const variants: TaskQueue[] = [
      taskQueue(),
      taskQueue({ spec: { queue: 'mail-high' } }),
      taskQueue({ worker: { concurrency: 64, metricsPort: 9100, terminationGracePeriodSeconds: 30 } }),
      taskQueue({ templateMetadata: { labels: { version: '2' } }, container: { image: 'other:2' } }),
      taskQueue({ spec: { broker: { redis: { urlFrom: { secretKeyRef: { name: 'r', key: 'url' } } } } } }),
    ];
    for (const tq of variants) {
      assert.deepEqual(buildWorkerDeployment(tq).spec?.selector, { matchLabels: workerSelectorLabels('emails') });
    }
  });

  test('the TaskQueue is the controlling owner, so deleting it garbage-collects the Deployment', () => {
    const d = buildWorkerDeployment(taskQueue());
    assert.deepEqual(d.metadata?.ownerReferences, [
      {
        apiVersion: 'taskfleet.dev/v1alpha1',
        kind: 'TaskQueue',
        name: 'emails',
        uid: UID,
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  test('a TaskQueue not read from the API server (no uid or namespace) is a caller bug', () => {
    for (const drop of ['uid', 'namespace'] as const) {
      const tq = taskQueue();
      delete tq.metadata[drop];
      assert.throws(
        () => buildWorkerDeployment(tq),
        (error: unknown) =>
          error instanceof TaskfleetError &&
          !(error instanceof TaskQueueSpecError) &&
          error.code === 'MISSING_METADATA' &&
          error.message.includes(`metadata.${drop}`),
      );
    }
  });
});

describe('replicas', () => {
  test('the applied object has no replicas field, whatever the spec says', () => {
    for (const tq of [
      taskQueue(),
      taskQueue({ spec: { scaling: { minReplicas: 3, maxReplicas: 9, fallback: { replicas: 2 } } } }),
    ]) {
      const d = buildWorkerDeployment(tq);
      assert.ok(d.spec);
      assert.equal(Object.hasOwn(d.spec, 'replicas'), false);
      assert.doesNotMatch(JSON.stringify(d), /"replicas"/);
    }
  });
});

describe('worker environment', () => {
  const table: { name: string; tq: TaskQueue; env: Record<string, string | undefined> }[] = [
    {
      name: 'defaults',
      tq: taskQueue(),
      env: {
        TASKFLEET_QUEUE: 'emails',
        TASKFLEET_CONCURRENCY: '16',
        TASKFLEET_PREFETCH: undefined,
        TASKFLEET_METRICS_PORT: '9090',
        TASKFLEET_SHUTDOWN_GRACE: '270000',
        TASKFLEET_BROKER: 'redis://redis.shop:6379/0',
        TASKFLEET_PREFIX: 'tf',
        TASKFLEET_BACKEND: undefined,
      },
    },
    {
      name: 'everything set',
      tq: taskQueue({
        spec: {
          queue: 'mail-high',
          broker: { redis: { url: 'rediss://broker:6380/1', prefix: 'shop' } },
          resultBackend: { redis: { url: 'redis://results:6379/2' } },
        },
        worker: { concurrency: 4, prefetch: 8, metricsPort: 9100, terminationGracePeriodSeconds: 60 },
      }),
      env: {
        TASKFLEET_QUEUE: 'mail-high',
        TASKFLEET_CONCURRENCY: '4',
        TASKFLEET_PREFETCH: '8',
        TASKFLEET_METRICS_PORT: '9100',
        TASKFLEET_SHUTDOWN_GRACE: '54000',
        TASKFLEET_BROKER: 'rediss://broker:6380/1',
        TASKFLEET_PREFIX: 'shop',
        TASKFLEET_BACKEND: 'redis://results:6379/2',
      },
    },
    {
      name: 'prefetch 0 is a setting, not an absence',
      tq: taskQueue({ worker: { prefetch: 0 } }),
      env: { TASKFLEET_PREFETCH: '0' },
    },
  ];
  for (const { name, tq, env } of table) {
    test(`TASKFLEET_* values: ${name}`, () => {
      const d = buildWorkerDeployment(tq);
      for (const [key, value] of Object.entries(env)) {
        const v = envVar(d, key);
        if (value === undefined) assert.equal(v, undefined, `${key} is not set`);
        else assert.deepEqual(v, { name: key, value }, key);
      }
    });
  }

  test('shutdown grace: the termination grace period less max(5 s, 10 %), never below half', () => {
    const table: [seconds: number, ms: number][] = [
      [300, 270_000],
      [86400, 77_760_000],
      [60, 54_000],
      [50, 45_000],
      [30, 25_000],
      [10, 5_000],
      [6, 3_000],
      [1, 500],
    ];
    for (const [seconds, ms] of table) {
      assert.equal(shutdownGraceMs(seconds), ms, `${seconds} s`);
      assert.ok(shutdownGraceMs(seconds) < seconds * 1000);
    }
    const d = buildWorkerDeployment(taskQueue({ worker: { terminationGracePeriodSeconds: 120 } }));
    assert.equal(podSpecOf(d).terminationGracePeriodSeconds, 120);
    assert.deepEqual(envVar(d, 'TASKFLEET_SHUTDOWN_GRACE'), { name: 'TASKFLEET_SHUTDOWN_GRACE', value: '108000' });
  });

  test('TASKFLEET_POD_NAME comes from the downward API, so heartbeats name the pod even past 63 characters', () => {
    assert.deepEqual(envVar(buildWorkerDeployment(taskQueue()), 'TASKFLEET_POD_NAME'), {
      name: 'TASKFLEET_POD_NAME',
      valueFrom: { fieldRef: { fieldPath: 'metadata.name' } },
    });
  });

  test('URLs from Secrets stay references: valueFrom.secretKeyRef, never a value', () => {
    const d = buildWorkerDeployment(
      taskQueue({
        spec: {
          broker: { redis: { urlFrom: { secretKeyRef: { name: 'broker-credentials', key: 'url' } } } },
          resultBackend: { redis: { urlFrom: { secretKeyRef: { name: 'backend-credentials', key: 'redis-url' } } } },
        },
      }),
    );
    assert.deepEqual(envVar(d, 'TASKFLEET_BROKER'), {
      name: 'TASKFLEET_BROKER',
      valueFrom: { secretKeyRef: { name: 'broker-credentials', key: 'url' } },
    });
    assert.deepEqual(envVar(d, 'TASKFLEET_BACKEND'), {
      name: 'TASKFLEET_BACKEND',
      valueFrom: { secretKeyRef: { name: 'backend-credentials', key: 'redis-url' } },
    });
    assert.doesNotMatch(JSON.stringify(d), /redis:\/\//);
  });

  test('the operator’s variables come first, the user’s follow in their order, and a user’s own wins', () => {
    const userEnv: V1EnvVar[] = [
      { name: 'LOG_FORMAT', value: 'json' },
      { name: 'TASKFLEET_CONCURRENCY', value: '2' },
      { name: 'TASKFLEET_BROKER', valueFrom: { configMapKeyRef: { name: 'endpoints', key: 'broker' } } },
      { name: 'TASKFLEET_LOG_LEVEL', value: 'debug' },
      { name: 'SMTP_URL', value: '$(TASKFLEET_QUEUE)-smtp' },
    ];
    const d = buildWorkerDeployment(taskQueue({ container: { env: userEnv } }));
    assert.deepEqual(
      envOf(d).map((e) => e.name),
      [
        'TASKFLEET_QUEUE',
        'TASKFLEET_METRICS_PORT',
        'TASKFLEET_SHUTDOWN_GRACE',
        'TASKFLEET_POD_NAME',
        'TASKFLEET_PREFIX',
        ...userEnv.map((e) => e.name),
      ],
    );
    assert.deepEqual(envOf(d).slice(-userEnv.length), userEnv);
  });
});

describe('metrics port and probes', () => {
  test('a TCP port named metrics on spec.worker.metricsPort, after the user’s ports', () => {
    const d = buildWorkerDeployment(
      taskQueue({ worker: { metricsPort: 9100 }, container: { ports: [{ name: 'http', containerPort: 8080 }] } }),
    );
    assert.deepEqual(workerOf(d).ports, [
      { name: 'http', containerPort: 8080 },
      { name: 'metrics', containerPort: 9100, protocol: 'TCP' },
    ]);
  });

  test('a port the user declares on the metrics port is kept, not added twice', () => {
    for (const port of [
      { name: 'metrics', containerPort: 9090 },
      { name: 'prom', containerPort: 9090, protocol: 'TCP' },
      { containerPort: 9090 },
    ]) {
      assert.deepEqual(workerOf(buildWorkerDeployment(taskQueue({ container: { ports: [port] } }))).ports, [port]);
    }
  });

  test('liveness on /healthz and readiness on /readyz at the metrics port', () => {
    const c = workerOf(buildWorkerDeployment(taskQueue({ worker: { metricsPort: 9100 } })));
    assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 9100 });
    assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 9100 });
    assert.ok((c.livenessProbe?.failureThreshold ?? 0) * (c.livenessProbe?.periodSeconds ?? 0) >= 60);
  });

  test('a probe the user set is kept whole; the other is still added', () => {
    const liveness = { exec: { command: ['/bin/true'] }, periodSeconds: 30 };
    const readiness = { httpGet: { path: '/custom-ready', port: 8080 } };
    const onlyLiveness = workerOf(buildWorkerDeployment(taskQueue({ container: { livenessProbe: liveness } })));
    assert.deepEqual(onlyLiveness.livenessProbe, liveness);
    assert.deepEqual(onlyLiveness.readinessProbe?.httpGet, { path: '/readyz', port: 9090 });
    const both = workerOf(
      buildWorkerDeployment(taskQueue({ container: { livenessProbe: liveness, readinessProbe: readiness } })),
    );
    assert.deepEqual([both.livenessProbe, both.readinessProbe], [liveness, readiness]);
  });

  test('Prometheus annotations are added; the user’s own and other annotations are kept', () => {
    const added = buildWorkerDeployment(taskQueue({ worker: { metricsPort: 9100 } }));
    assert.deepEqual(added.spec?.template.metadata?.annotations, {
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9100',
      'prometheus.io/path': '/metrics',
    });
    const user = buildWorkerDeployment(
      taskQueue({
        templateMetadata: { annotations: { 'prometheus.io/scrape': 'false', 'example.com/team': 'growth' } },
      }),
    );
    assert.deepEqual(user.spec?.template.metadata?.annotations, {
      'prometheus.io/scrape': 'false',
      'prometheus.io/port': '9090',
      'prometheus.io/path': '/metrics',
      'example.com/team': 'growth',
    });
  });

  test('the template’s grace period may repeat spec.worker’s', () => {
    const d = buildWorkerDeployment(
      taskQueue({ worker: { terminationGracePeriodSeconds: 45 }, podSpec: { terminationGracePeriodSeconds: 45 } }),
    );
    assert.equal(podSpecOf(d).terminationGracePeriodSeconds, 45);
  });

  test('TASKFLEET_METRICS_PORT may repeat spec.worker.metricsPort, or come from elsewhere', () => {
    for (const env of [
      { name: 'TASKFLEET_METRICS_PORT', value: '9090' },
      { name: 'TASKFLEET_METRICS_PORT', valueFrom: { configMapKeyRef: { name: 'ports', key: 'metrics' } } },
    ]) {
      assert.deepEqual(envVar(buildWorkerDeployment(taskQueue({ container: { env: [env] } })), env.name), env);
    }
  });
});

describe('secure defaults', () => {
  test('filled in where the template says nothing', () => {
    const d = buildWorkerDeployment(taskQueue());
    assert.deepEqual(podSpecOf(d).securityContext, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    assert.deepEqual(workerOf(d).securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  const podTable: { name: string; user: V1PodSpec['securityContext']; expected: V1PodSpec['securityContext'] }[] = [
    {
      name: 'runAsNonRoot false wins',
      user: { runAsNonRoot: false },
      expected: { runAsNonRoot: false, seccompProfile: { type: 'RuntimeDefault' } },
    },
    {
      name: 'a Localhost seccomp profile wins whole',
      user: { seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/worker.json' } },
      expected: { runAsNonRoot: true, seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/worker.json' } },
    },
    {
      name: 'other fields are kept',
      user: { runAsUser: 10001, fsGroup: 2000 },
      expected: { runAsUser: 10001, fsGroup: 2000, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    },
  ];
  for (const { name, user, expected } of podTable) {
    test(`pod securityContext: ${name}`, () => {
      const d = buildWorkerDeployment(taskQueue({ podSpec: { securityContext: user } }));
      assert.deepEqual(podSpecOf(d).securityContext, expected);
    });
  }

  const containerTable: {
    name: string;
    user: V1Container['securityContext'];
    expected: V1Container['securityContext'];
  }[] = [
    {
      name: 'readOnlyRootFilesystem false and allowPrivilegeEscalation true win',
      user: { readOnlyRootFilesystem: false, allowPrivilegeEscalation: true },
      expected: { readOnlyRootFilesystem: false, allowPrivilegeEscalation: true, capabilities: { drop: ['ALL'] } },
    },
    {
      name: 'added capabilities keep drop ALL',
      user: { capabilities: { add: ['NET_BIND_SERVICE'] } },
      expected: {
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { add: ['NET_BIND_SERVICE'], drop: ['ALL'] },
      },
    },
    {
      name: 'the user’s drop list wins',
      user: { capabilities: { drop: ['NET_RAW'] } },
      expected: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['NET_RAW'] } },
    },
    {
      name: 'privileged: no allowPrivilegeEscalation false (the API server would reject it)',
      user: { privileged: true },
      expected: { privileged: true, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
    },
    {
      name: 'CAP_SYS_ADMIN: no allowPrivilegeEscalation false (the API server would reject it)',
      user: { capabilities: { add: ['CAP_SYS_ADMIN'] } },
      expected: { readOnlyRootFilesystem: true, capabilities: { add: ['CAP_SYS_ADMIN'], drop: ['ALL'] } },
    },
    {
      name: 'other fields are kept',
      user: { runAsUser: 10001 },
      expected: {
        runAsUser: 10001,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      },
    },
  ];
  for (const { name, user, expected } of containerTable) {
    test(`container securityContext: ${name}`, () => {
      const d = buildWorkerDeployment(taskQueue({ container: { securityContext: user } }));
      assert.deepEqual(workerOf(d).securityContext, expected);
    });
  }
});

describe('the user’s template', () => {
  test('is kept: other containers, init containers, volumes and the rest of the worker container', () => {
    const sidecar: V1Container = {
      name: 'proxy',
      image: 'proxy:1',
      ports: [{ name: 'metrics', containerPort: 15090 }],
    };
    const init: V1Container = { name: 'migrate', image: 'registry.example/emails:1.4.2', command: ['migrate'] };
    const volumeMounts = [{ name: 'tmp', mountPath: '/tmp' }];
    const resources = { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } };
    const tq = taskQueue({
      podSpec: {
        initContainers: [init],
        volumes: [{ name: 'tmp', emptyDir: {} }],
        serviceAccountName: 'emails',
        nodeSelector: { pool: 'workers' },
      },
      container: { volumeMounts, resources, args: ['--log-level', 'debug'] },
    });
    tq.spec.worker?.template.spec?.containers.push(sidecar);
    const d = buildWorkerDeployment(tq);
    const pod = podSpecOf(d);
    assert.deepEqual(pod.containers.slice(1), [sidecar]);
    assert.deepEqual(pod.initContainers, [init]);
    assert.deepEqual(pod.volumes, [{ name: 'tmp', emptyDir: {} }]);
    assert.equal(pod.serviceAccountName, 'emails');
    assert.deepEqual(pod.nodeSelector, { pool: 'workers' });
    const c = workerOf(d);
    assert.deepEqual(
      [c.name, c.image, c.command, c.args, c.volumeMounts, c.resources],
      [
        'worker',
        'registry.example/emails:1.4.2',
        ['taskfleet', 'worker', '--app', './dist/tasks.js'],
        ['--log-level', 'debug'],
        volumeMounts,
        resources,
      ],
    );
  });

  test('is not changed, and the result shares no objects with it', () => {
    const tq = taskQueue({
      container: { env: [{ name: 'A', value: '1' }], securityContext: { runAsUser: 1 } },
      podSpec: { nodeSelector: { pool: 'workers' } },
      templateMetadata: { labels: { team: 'growth' } },
    });
    const before = structuredClone(tq);
    const d = buildWorkerDeployment(tq);
    assert.deepEqual(tq, before);
    workerOf(d).env?.push({ name: 'B', value: '2' });
    (workerOf(d).securityContext ?? {}).runAsUser = 2;
    d.spec!.template.metadata!.labels!.team = 'other';
    // Deeper objects the builder passes through as they are.
    workerOf(d).command?.push('--verbose');
    podSpecOf(d).nodeSelector!.pool = 'other';
    assert.deepEqual(tq, before);
  });
});

describe('resources of the worker container', () => {
  test('a container that sets none gets the defaults: requests 100m CPU and 128Mi, a 512Mi memory limit', () => {
    const d = buildWorkerDeployment(taskQueue());
    assert.deepEqual(workerOf(d).resources, {
      requests: { cpu: '100m', memory: '128Mi' },
      limits: { memory: '512Mi' },
    });
    assert.deepEqual(workerOf(d).resources, DEFAULT_WORKER_RESOURCES);
    workerOf(d).resources!.requests!.cpu = '1';
    assert.equal(DEFAULT_WORKER_RESOURCES.requests?.cpu, '100m', 'the defaults are copied, not shared');
  });

  test('the template’s resources win whole, even {}; other containers get none', () => {
    const own = { limits: { cpu: '2' } };
    const tq = taskQueue({ container: { resources: own } });
    tq.spec.worker?.template.spec?.containers.push({ name: 'proxy', image: 'proxy:1' });
    const d = buildWorkerDeployment(tq);
    assert.deepEqual(workerOf(d).resources, own);
    assert.equal(podSpecOf(d).containers[1]?.resources, undefined);
    assert.deepEqual(workerOf(buildWorkerDeployment(taskQueue({ container: { resources: {} } }))).resources, {});
  });

  test('the operator’s defaults (--worker-resources) replace ours; {} adds none', () => {
    const defaultResources = { requests: { cpu: '50m', memory: '64Mi' } };
    assert.deepEqual(workerOf(buildWorkerDeployment(taskQueue(), { defaultResources })).resources, defaultResources);
    assert.equal(workerOf(buildWorkerDeployment(taskQueue(), { defaultResources: {} })).resources, undefined);
    const own = { requests: { cpu: '1' } };
    assert.deepEqual(
      workerOf(buildWorkerDeployment(taskQueue({ container: { resources: own } }), { defaultResources })).resources,
      own,
    );
  });
});

describe('determinism', () => {
  test('the same TaskQueue gives deeply equal Deployments, with nothing undefined in them', () => {
    const tq = taskQueue({
      spec: {
        broker: { redis: { urlFrom: { secretKeyRef: { name: 's', key: 'k' } }, prefix: 'p' } },
        resultBackend: { redis: { url: 'redis://r:6379/1' } },
      },
      worker: { prefetch: 4 },
      container: { env: [{ name: 'X', value: 'y' }] },
    });
    const a = buildWorkerDeployment(tq);
    const b = buildWorkerDeployment(structuredClone(tq));
    assert.deepEqual(a, b);
    assert.notEqual(a, b);
    // What the API server receives is exactly this object: no undefined values lost in serialization.
    assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  });
});

describe('a Kafka broker', () => {
  const kafka = (connection: Partial<KafkaConnection> = {}): Partial<TaskQueueSpec> => ({
    broker: { kafka: { brokers: ['kafka-0.kafka:9092', 'kafka-1.kafka:9092'], ...connection } },
  });
  const secretRef = (name: string, key: string) => ({ secretKeyRef: { name, key } });

  test('the URL lists the brokers; prefix and partitions are always set; nothing secret, no volume', () => {
    const d = buildWorkerDeployment(taskQueue({ spec: kafka() }));
    const env = Object.fromEntries(envOf(d).map((e) => [e.name, e.value]));
    assert.deepEqual(
      {
        broker: env.TASKFLEET_BROKER,
        prefix: env.TASKFLEET_PREFIX,
        partitions: env.TASKFLEET_KAFKA_PARTITIONS,
      },
      { broker: 'kafka://kafka-0.kafka:9092,kafka-1.kafka:9092', prefix: 'tf', partitions: '12' },
    );
    for (const absent of [
      'TASKFLEET_KAFKA_REPLICATION_FACTOR',
      'TASKFLEET_KAFKA_SASL_MECHANISM',
      'TASKFLEET_KAFKA_USERNAME',
      'TASKFLEET_KAFKA_PASSWORD',
      'TASKFLEET_KAFKA_CA_FILE',
      'TASKFLEET_KAFKA_CERT_FILE',
      'TASKFLEET_KAFKA_KEY_FILE',
    ]) {
      assert.equal(envVar(d, absent), undefined, absent);
    }
    assert.equal(podSpecOf(d).volumes, undefined);
    assert.equal(workerOf(d).volumeMounts, undefined);
  });

  test('SASL: the mechanism as a value, username and password as secretKeyRefs, never values', () => {
    const d = buildWorkerDeployment(
      taskQueue({
        spec: kafka({
          prefix: 'shop',
          partitions: 48,
          replicationFactor: 3,
          sasl: { mechanism: 'scram-sha-512', secretRef: { name: 'kafka-user' } },
        }),
      }),
    );
    const ours = envOf(d).filter((e) => e.name.startsWith('TASKFLEET_KAFKA_') || e.name === 'TASKFLEET_PREFIX');
    assert.deepEqual(ours, [
      { name: 'TASKFLEET_PREFIX', value: 'shop' },
      { name: 'TASKFLEET_KAFKA_PARTITIONS', value: '48' },
      { name: 'TASKFLEET_KAFKA_REPLICATION_FACTOR', value: '3' },
      { name: 'TASKFLEET_KAFKA_SASL_MECHANISM', value: 'scram-sha-512' },
      { name: 'TASKFLEET_KAFKA_USERNAME', valueFrom: { secretKeyRef: { name: 'kafka-user', key: 'username' } } },
      { name: 'TASKFLEET_KAFKA_PASSWORD', valueFrom: { secretKeyRef: { name: 'kafka-user', key: 'password' } } },
    ]);
    assert.equal(podSpecOf(d).volumes, undefined, 'SASL alone needs no volume');
  });

  test('TLS without files: a kafkas:// URL and the system’s CAs', () => {
    const d = buildWorkerDeployment(taskQueue({ spec: kafka({ tls: { enabled: true } }) }));
    assert.deepEqual(envVar(d, 'TASKFLEET_BROKER'), {
      name: 'TASKFLEET_BROKER',
      value: 'kafkas://kafka-0.kafka:9092,kafka-1.kafka:9092',
    });
    assert.equal(envVar(d, 'TASKFLEET_KAFKA_CA_FILE'), undefined);
    assert.equal(podSpecOf(d).volumes, undefined);
  });

  test('TLS files: one projected volume of the Secret keys, mounted read-only, and *_FILE variables', () => {
    const d = buildWorkerDeployment(
      taskQueue({
        spec: kafka({
          tls: {
            enabled: true,
            caFrom: secretRef('kafka-ca', 'ca.pem'),
            certFrom: secretRef('kafka-client', 'tls.crt'),
            keyFrom: secretRef('kafka-client', 'tls.key'),
          },
        }),
        podSpec: { volumes: [{ name: 'tmp', emptyDir: {} }] },
        container: { volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] },
      }),
    );
    assert.deepEqual(podSpecOf(d).volumes, [
      { name: 'tmp', emptyDir: {} },
      {
        name: KAFKA_TLS_VOLUME,
        projected: {
          sources: [
            { secret: { name: 'kafka-ca', items: [{ key: 'ca.pem', path: 'ca.crt' }] } },
            { secret: { name: 'kafka-client', items: [{ key: 'tls.crt', path: 'tls.crt' }] } },
            { secret: { name: 'kafka-client', items: [{ key: 'tls.key', path: 'tls.key' }] } },
          ],
        },
      },
    ]);
    assert.deepEqual(workerOf(d).volumeMounts, [
      { name: 'tmp', mountPath: '/tmp' },
      { name: KAFKA_TLS_VOLUME, mountPath: KAFKA_TLS_DIR, readOnly: true },
    ]);
    const files = Object.fromEntries(
      envOf(d)
        .filter((e) => e.name.endsWith('_FILE'))
        .map((e) => [e.name, e.value]),
    );
    assert.deepEqual(files, {
      TASKFLEET_KAFKA_CA_FILE: `${KAFKA_TLS_DIR}/ca.crt`,
      TASKFLEET_KAFKA_CERT_FILE: `${KAFKA_TLS_DIR}/tls.crt`,
      TASKFLEET_KAFKA_KEY_FILE: `${KAFKA_TLS_DIR}/tls.key`,
    });
    assert.match(envVar(d, 'TASKFLEET_BROKER')?.value ?? '', /^kafkas:\/\//);
    // Sidecars do not get the Secrets.
    const withSidecar = taskQueue({ spec: kafka({ tls: { enabled: true, caFrom: secretRef('kafka-ca', 'ca') } }) });
    withSidecar.spec.worker?.template.spec?.containers.push({ name: 'proxy', image: 'proxy:1' });
    assert.deepEqual(podSpecOf(buildWorkerDeployment(withSidecar)).containers[1], { name: 'proxy', image: 'proxy:1' });
  });

  test('a volume of that name, or a mount on that path, in the template is kept instead of ours', () => {
    const mine = { name: KAFKA_TLS_VOLUME, secret: { secretName: 'my-kafka-files' } };
    const d = buildWorkerDeployment(
      taskQueue({
        spec: kafka({ tls: { enabled: true, caFrom: secretRef('kafka-ca', 'ca.crt') } }),
        podSpec: { volumes: [mine] },
        container: { volumeMounts: [{ name: 'other', mountPath: KAFKA_TLS_DIR }] },
      }),
    );
    assert.deepEqual(podSpecOf(d).volumes, [mine]);
    assert.deepEqual(workerOf(d).volumeMounts, [{ name: 'other', mountPath: KAFKA_TLS_DIR }]);
  });

  test('the user’s own TASKFLEET_BROKER or credentials win, as for Redis', () => {
    const userEnv: V1EnvVar[] = [
      { name: 'TASKFLEET_BROKER', value: 'kafka://kafka-proxy:9092' },
      { name: 'TASKFLEET_KAFKA_USERNAME', value: 'me' },
    ];
    const d = buildWorkerDeployment(
      taskQueue({
        spec: kafka({ sasl: { mechanism: 'plain', secretRef: { name: 'kafka-user' } } }),
        container: { env: userEnv },
      }),
    );
    assert.deepEqual(envOf(d).slice(-2), userEnv);
    assert.deepEqual(
      envOf(d).map((e) => e.name),
      [
        'TASKFLEET_QUEUE',
        'TASKFLEET_CONCURRENCY',
        'TASKFLEET_METRICS_PORT',
        'TASKFLEET_SHUTDOWN_GRACE',
        'TASKFLEET_POD_NAME',
        'TASKFLEET_PREFIX',
        'TASKFLEET_KAFKA_PARTITIONS',
        'TASKFLEET_KAFKA_SASL_MECHANISM',
        'TASKFLEET_KAFKA_PASSWORD',
        'TASKFLEET_BROKER',
        'TASKFLEET_KAFKA_USERNAME',
      ],
    );
  });

  test('the same Kafka TaskQueue gives deeply equal Deployments, with nothing undefined in them', () => {
    const tq = taskQueue({
      spec: {
        ...kafka({
          sasl: { mechanism: 'plain', secretRef: { name: 'u' } },
          tls: { enabled: true, caFrom: secretRef('ca', 'ca.crt') },
        }),
        resultBackend: { redis: { url: 'redis://r:6379/1' } },
      },
    });
    const a = buildWorkerDeployment(tq);
    assert.deepEqual(a, buildWorkerDeployment(structuredClone(tq)));
    assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
    assert.deepEqual(envVar(a, 'TASKFLEET_BACKEND'), { name: 'TASKFLEET_BACKEND', value: 'redis://r:6379/1' });
  });
});

describe('specs the operator cannot act on', () => {
  const table: { name: string; tq: () => TaskQueue; field: string; message: RegExp }[] = [
    {
      name: 'no containers',
      tq: () => taskQueue({ podSpec: { containers: [] } }),
      field: 'spec.worker.template.spec.containers',
      message:
        /^spec\.worker\.template\.spec\.containers is empty: add the worker container \(image with your tasks, command taskfleet worker --app …\)$/,
    },
    {
      name: 'no pod spec at all',
      tq: () => taskQueue({ worker: { template: {} } }),
      field: 'spec.worker.template.spec.containers',
      message: /is empty: add the worker container/,
    },
    {
      name: 'no spec.worker',
      tq: () => {
        const tq = taskQueue({ spec: { scaleTargetRef: { name: 'legacy' } } });
        delete tq.spec.worker;
        return tq;
      },
      field: 'spec.worker',
      message: /spec\.scaleTargetRef/,
    },
    {
      name: 'no broker',
      tq: () => taskQueue({ spec: { broker: {} } }),
      field: 'spec.broker',
      message: /set spec\.broker\.redis/,
    },
    {
      name: 'both redis and kafka',
      tq: () => taskQueue({ spec: { broker: { redis: { url: 'redis://a' }, kafka: { brokers: ['kafka:9092'] } } } }),
      field: 'spec.broker',
      message: /sets both redis and kafka: set exactly one/,
    },
    {
      name: 'kafka without brokers',
      tq: () => taskQueue({ spec: { broker: { kafka: { brokers: [] } } } }),
      field: 'spec.broker.kafka.brokers',
      message: /is empty: list the bootstrap brokers/,
    },
    {
      name: 'a Kafka client certificate without its key',
      tq: () =>
        taskQueue({
          spec: {
            broker: {
              kafka: {
                brokers: ['kafka:9093'],
                tls: { enabled: true, certFrom: { secretKeyRef: { name: 'c', key: 'tls.crt' } } },
              },
            },
          },
        }),
      field: 'spec.broker.kafka.tls',
      message: /set both certFrom and keyFrom/,
    },
    {
      name: 'Kafka TLS files with TLS off',
      tq: () =>
        taskQueue({
          spec: {
            broker: {
              kafka: {
                brokers: ['kafka:9092'],
                tls: { enabled: false, caFrom: { secretKeyRef: { name: 'c', key: 'ca.crt' } } },
              },
            },
          },
        }),
      field: 'spec.broker.kafka.tls',
      message: /caFrom need enabled: true/,
    },
    {
      name: 'broker with url and urlFrom',
      tq: () =>
        taskQueue({
          spec: { broker: { redis: { url: 'redis://a', urlFrom: { secretKeyRef: { name: 's', key: 'k' } } } } },
        }),
      field: 'spec.broker.redis',
      message: /exactly one of url and urlFrom/,
    },
    {
      name: 'result backend with neither url nor urlFrom',
      tq: () => taskQueue({ spec: { resultBackend: { redis: { prefix: 'x' } } } }),
      field: 'spec.resultBackend.redis',
      message: /exactly one of url and urlFrom/,
    },
    {
      name: 'a name too long for a label value',
      tq: () => taskQueue({ name: 'q'.repeat(64) }),
      field: 'metadata.name',
      message: /at most 63/,
    },
    {
      name: 'two grace periods',
      tq: () =>
        taskQueue({ worker: { terminationGracePeriodSeconds: 300 }, podSpec: { terminationGracePeriodSeconds: 600 } }),
      field: 'spec.worker.template.spec.terminationGracePeriodSeconds',
      message: /set spec\.worker\.terminationGracePeriodSeconds: 600/,
    },
    {
      name: 'TASKFLEET_METRICS_PORT off spec.worker.metricsPort',
      tq: () => taskQueue({ container: { env: [{ name: 'TASKFLEET_METRICS_PORT', value: '8080' }] } }),
      field: 'spec.worker.template.spec.containers[0].env',
      message: /set spec\.worker\.metricsPort instead/,
    },
    {
      name: 'a port named metrics off spec.worker.metricsPort',
      tq: () => taskQueue({ container: { ports: [{ name: 'metrics', containerPort: 8080 }] } }),
      field: 'spec.worker.template.spec.containers[0].ports',
      message: /set spec\.worker\.metricsPort: 8080, or rename the port/,
    },
  ];
  for (const { name, tq, field, message } of table) {
    test(name, () => assertSpecError(() => buildWorkerDeployment(tq()), field, message));
  }

  test('a name of 63 characters is fine', () => {
    const name = 'q'.repeat(63);
    assert.equal(buildWorkerDeployment(taskQueue({ name })).metadata?.name, `${name}-workers`);
  });
});
