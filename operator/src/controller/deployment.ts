/**
 * The worker Deployment of a TaskQueue with `spec.worker`: the object the operator applies with
 * server-side apply (field manager {@link FIELD_MANAGER}) on every reconcile. A pure function of the
 * TaskQueue — no I/O, no clock, no randomness — so the same TaskQueue always yields a deeply equal object
 * and re-applying it is a no-op for the API server.
 *
 * The user's pod template is merged, not replaced: the operator fills in what the worker needs (its
 * TASKFLEET_* settings, the metrics port, probes, Prometheus annotations, secure defaults) and keeps
 * everything else the user wrote. Where the user set a field the operator would fill, the user wins.
 * docs/operator.md ("The worker Deployment") lists every rule.
 */
import type {
  V1Capabilities,
  V1Container,
  V1ContainerPort,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1PodSecurityContext,
  V1PodSpec,
  V1Probe,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { TaskfleetError } from 'taskfleet';
import { WORKER_DEFAULTS } from '../api/defaults.ts';
import { API_VERSION, KIND, type TaskQueue } from '../api/types.ts';
import type { WorkerBrokerSettings } from '../brokers/definition.ts';
import { connectionEnv } from '../brokers/redis/worker-settings.ts';
import { workerBrokerSettings } from '../brokers/registry.ts';
import { TaskQueueSpecError } from './errors.ts';

/** The field manager of everything the operator applies. */
export const FIELD_MANAGER = 'taskfleet';

/**
 * Resources of a worker container that sets none: enough for a Node process running I/O-bound tasks, with
 * a memory limit so that one leaking worker cannot take its node down. No CPU limit: throttling a worker
 * makes its calls slow and its probes time out, while the CPU request already places it fairly.
 * `--worker-resources` (the operator's) replaces them; a container's own `resources` wins over both.
 */
export const DEFAULT_WORKER_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '512Mi' },
};

/** How the operator builds every worker Deployment (its flags), beside what each TaskQueue says. */
export interface WorkerDeploymentOptions {
  /**
   * Resources of a worker container whose template sets no `resources`; `{}` adds none.
   * @defaultValue DEFAULT_WORKER_RESOURCES
   */
  defaultResources?: V1ResourceRequirements;
}

/** Name of the port the worker serves /metrics, /healthz and /readyz on. */
export const METRICS_PORT_NAME = 'metrics';

/** The worker Deployment of the TaskQueue named `taskQueueName` (in the same namespace). */
export function workerDeploymentName(taskQueueName: string): string {
  return `${taskQueueName}-workers`;
}

/**
 * The labels the Deployment's selector matches. Both derive from the TaskQueue's name only, which never
 * changes, because a Deployment's selector is immutable: anything taken from the spec would make the
 * next apply after a spec change fail.
 */
export function workerSelectorLabels(taskQueueName: string): Record<string, string> {
  return { 'app.kubernetes.io/instance': taskQueueName, 'taskfleet.dev/queue': taskQueueName };
}

/** The labels of the Deployment and its pods. */
export function workerLabels(taskQueueName: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'taskfleet-worker',
    'app.kubernetes.io/managed-by': 'taskfleet',
    ...workerSelectorLabels(taskQueueName),
  };
}

/**
 * The worker's shutdown grace (TASKFLEET_SHUTDOWN_GRACE, ms) for a pod's terminationGracePeriodSeconds:
 * shorter by max(5 s, 10 %) — but never below half the period — so that after the grace the worker still
 * has time to hand back the calls it aborts and close its connections before the kubelet's SIGKILL.
 * 300 s → 270 000 ms, 60 s → 54 000 ms, 30 s → 25 000 ms, 6 s → 3 000 ms.
 */
export function shutdownGraceMs(terminationGracePeriodSeconds: number): number {
  const grace = terminationGracePeriodSeconds;
  const seconds = Math.max(grace - Math.max(5, grace / 10), grace / 2);
  return Math.floor(seconds * 1000);
}

/**
 * The worker Deployment for `tq`, to be applied with server-side apply.
 *
 * @throws TaskQueueSpecError (code INVALID_SPEC) when the spec cannot give a working Deployment: no
 *   spec.worker, no containers, no broker, or a setting given two different values.
 * @throws TaskfleetError (code MISSING_METADATA) when `tq` was not read from the API server (no
 *   namespace or uid): a bug in the caller, not in the spec.
 */
export function buildWorkerDeployment(tq: TaskQueue, options: WorkerDeploymentOptions = {}): V1Deployment {
  const { name, namespace, uid } = tq.metadata;
  if (!namespace || !uid) {
    throw new TaskfleetError(
      'MISSING_METADATA',
      `TaskQueue ${name} has no metadata.${namespace ? 'uid' : 'namespace'}: build the worker Deployment from a TaskQueue read from the API server`,
    );
  }
  // Label values are at most 63 characters; TaskQueue names may be longer (up to 253).
  if (name.length > 63) {
    throw new TaskQueueSpecError(
      'metadata.name',
      `TaskQueue name ${name} is ${name.length} characters; a TaskQueue with spec.worker needs a name of at most 63 (it becomes a label value of its workers)`,
    );
  }
  const worker = tq.spec.worker;
  if (!worker) {
    throw new TaskQueueSpecError(
      'spec.worker',
      'spec.worker is unset: set spec.worker for a Deployment the operator manages, or spec.scaleTargetRef to scale an existing one',
    );
  }
  // A private copy: nothing below mutates it, and the result shares no objects with the TaskQueue, so
  // neither the informer's cache nor the caller can change one through the other.
  const template = structuredClone(worker.template ?? {});
  const podSpec: Partial<V1PodSpec> = template.spec ?? {};
  const containers = podSpec.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    throw new TaskQueueSpecError(
      'spec.worker.template.spec.containers',
      'spec.worker.template.spec.containers is empty: add the worker container (image with your tasks, command taskfleet worker --app …)',
    );
  }

  const metricsPort = worker.metricsPort ?? WORKER_DEFAULTS.metricsPort;
  const grace = worker.terminationGracePeriodSeconds ?? WORKER_DEFAULTS.terminationGracePeriodSeconds;
  const templateGrace = podSpec.terminationGracePeriodSeconds;
  if (templateGrace !== undefined && templateGrace !== grace) {
    // The worker's shutdown grace is derived from spec.worker's value; two values cannot both hold.
    throw new TaskQueueSpecError(
      'spec.worker.template.spec.terminationGracePeriodSeconds',
      `spec.worker.template.spec.terminationGracePeriodSeconds (${templateGrace}) differs from spec.worker.terminationGracePeriodSeconds (${grace}): set spec.worker.terminationGracePeriodSeconds: ${templateGrace} and remove it from the template`,
    );
  }

  const [first, ...others] = containers as [V1Container, ...V1Container[]];
  const broker = workerBrokerSettings(tq.spec.broker);
  const labels = workerLabels(name);
  const owner: V1OwnerReference = {
    apiVersion: API_VERSION,
    kind: KIND,
    name,
    uid,
    controller: true,
    // Deleting the TaskQueue in the foreground waits for the Deployment (needs `update` on
    // taskqueues/finalizers where OwnerReferencesPermissionEnforcement is on).
    blockOwnerDeletion: true,
  };

  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: workerDeploymentName(name), namespace, labels, ownerReferences: [owner] },
    spec: {
      // No `replicas`, on purpose: the operator sets replicas only through the /scale subresource, under
      // another field manager. If this object carried replicas, every apply would reset the fleet to that
      // number and take ownership of the field back from the scaler. A new Deployment starts at the
      // API server's default (1) until the first scaling decision.
      selector: { matchLabels: workerSelectorLabels(name) },
      template: {
        ...template,
        metadata: {
          ...template.metadata,
          // Ours win: the selector must match, and dashboards find workers by these.
          labels: { ...template.metadata?.labels, ...labels },
          annotations: {
            'prometheus.io/scrape': 'true',
            'prometheus.io/port': String(metricsPort),
            'prometheus.io/path': '/metrics',
            ...template.metadata?.annotations,
          },
        },
        spec: {
          ...podSpec,
          terminationGracePeriodSeconds: grace,
          securityContext: podSecurityDefaults(podSpec.securityContext),
          containers: [
            workerContainer(
              tq,
              first,
              broker,
              metricsPort,
              grace,
              options.defaultResources ?? DEFAULT_WORKER_RESOURCES,
            ),
            ...others,
          ],
          ...(broker.volume ? { volumes: withVolume(podSpec.volumes ?? [], broker.volume) } : {}),
        },
      },
    },
  };
}

/** The worker container: the user's first container plus what the worker needs. */
function workerContainer(
  tq: TaskQueue,
  container: V1Container,
  broker: WorkerBrokerSettings,
  metricsPort: number,
  grace: number,
  defaultResources: V1ResourceRequirements,
): V1Container {
  const path = 'spec.worker.template.spec.containers[0]';
  const userEnv = container.env ?? [];
  const userPort = userEnv.find((e) => e.name === 'TASKFLEET_METRICS_PORT');
  if (userPort?.value !== undefined && userPort.value !== String(metricsPort)) {
    // The probes, the port and the scrape annotation follow spec.worker.metricsPort: a worker listening
    // elsewhere would fail its probes and be restarted forever.
    throw new TaskQueueSpecError(
      `${path}.env`,
      `env TASKFLEET_METRICS_PORT=${userPort.value} in the worker container disagrees with spec.worker.metricsPort (${metricsPort}): set spec.worker.metricsPort instead`,
    );
  }
  // User env vars of the same name win; ours come first so that the user's can refer to them as $(NAME).
  const userNames = new Set(userEnv.map((e) => e.name));
  const env = [...operatorEnv(tq, broker, metricsPort, grace).filter((e) => !userNames.has(e.name)), ...userEnv];

  const probe = (httpPath: string, timings: Omit<V1Probe, 'httpGet'>): V1Probe => ({
    httpGet: { path: httpPath, port: metricsPort },
    ...timings,
  });
  return {
    ...container,
    env,
    ports: withMetricsPort(container.ports ?? [], metricsPort, path),
    // Generous liveness: /healthz fails only when the event loop is stuck, and a CPU-bound task may
    // hold it for a while; restarting then would abort every running call.
    livenessProbe:
      container.livenessProbe ?? probe('/healthz', { periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 6 }),
    readinessProbe:
      container.readinessProbe ?? probe('/readyz', { periodSeconds: 5, timeoutSeconds: 5, failureThreshold: 3 }),
    securityContext: containerSecurityDefaults(container.securityContext),
    // Whole or not at all: requests from one source and limits from another would make a pair nobody chose.
    ...(container.resources === undefined && Object.keys(defaultResources).length > 0
      ? { resources: structuredClone(defaultResources) }
      : {}),
    ...(broker.mount ? { volumeMounts: withMount(container.volumeMounts ?? [], broker.mount) } : {}),
  };
}

/** TASKFLEET_* settings for the worker (`taskfleet worker` reads each flag from its variable). */
function operatorEnv(tq: TaskQueue, broker: WorkerBrokerSettings, metricsPort: number, grace: number): V1EnvVar[] {
  const { spec } = tq;
  const worker = spec.worker!;
  const backend = spec.resultBackend?.redis;
  const env: V1EnvVar[] = [
    { name: 'TASKFLEET_QUEUE', value: spec.queue ?? tq.metadata.name },
    { name: 'TASKFLEET_CONCURRENCY', value: String(worker.concurrency ?? WORKER_DEFAULTS.concurrency) },
  ];
  if (worker.prefetch !== undefined) env.push({ name: 'TASKFLEET_PREFETCH', value: String(worker.prefetch) });
  env.push(
    { name: 'TASKFLEET_METRICS_PORT', value: String(metricsPort) },
    { name: 'TASKFLEET_SHUTDOWN_GRACE', value: String(shutdownGraceMs(grace)) },
    // Heartbeats name the pod by it, so that the operator can spare busy pods when scaling down.
    { name: 'TASKFLEET_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ...broker.env,
  );
  if (backend) env.push(connectionEnv('TASKFLEET_BACKEND', backend, 'spec.resultBackend.redis'));
  return env;
}

/** The user's volumes plus ours, unless they declare one of that name (theirs is kept). */
function withVolume(volumes: V1Volume[], volume: V1Volume): V1Volume[] {
  return volumes.some((v) => v.name === volume.name) ? volumes : [...volumes, volume];
}

/** The user's mounts plus ours, unless they mount that volume or that path already (theirs is kept). */
function withMount(mounts: V1VolumeMount[], mount: V1VolumeMount): V1VolumeMount[] {
  return mounts.some((m) => m.name === mount.name || m.mountPath === mount.mountPath) ? mounts : [...mounts, mount];
}

/**
 * The user's ports plus `metrics` (TCP) on the metrics port. A port the user already declares on that
 * number is kept as written, not added twice: the API server keys container ports by number and protocol.
 */
function withMetricsPort(ports: V1ContainerPort[], metricsPort: number, path: string): V1ContainerPort[] {
  const named = ports.find((p) => p.name === METRICS_PORT_NAME);
  if (named && named.containerPort !== metricsPort) {
    throw new TaskQueueSpecError(
      `${path}.ports`,
      `port ${METRICS_PORT_NAME} of the worker container is ${named.containerPort}, but spec.worker.metricsPort is ${metricsPort}: set spec.worker.metricsPort: ${named.containerPort}, or rename the port`,
    );
  }
  const declared = ports.some((p) => p.containerPort === metricsPort && (p.protocol ?? 'TCP') === 'TCP');
  return declared ? ports : [...ports, { name: METRICS_PORT_NAME, containerPort: metricsPort, protocol: 'TCP' }];
}

/** runAsNonRoot and the runtime's seccomp profile, each only where the user left it unset. */
function podSecurityDefaults(user: V1PodSecurityContext | undefined): V1PodSecurityContext {
  return {
    ...user,
    runAsNonRoot: user?.runAsNonRoot ?? true,
    seccompProfile: user?.seccompProfile ?? { type: 'RuntimeDefault' },
  };
}

/**
 * No privilege escalation, a read-only root filesystem and no capabilities, each only where the user
 * left it unset. allowPrivilegeEscalation stays unset for a privileged container or one adding
 * SYS_ADMIN: escalation is moot there, and the API server rejects `false` with either.
 */
function containerSecurityDefaults(user: V1SecurityContext | undefined): V1SecurityContext {
  const adds = user?.capabilities?.add ?? [];
  const escalates = user?.privileged === true || adds.some((c) => c === 'SYS_ADMIN' || c === 'CAP_SYS_ADMIN');
  const capabilities: V1Capabilities = { ...user?.capabilities, drop: user?.capabilities?.drop ?? ['ALL'] };
  const context: V1SecurityContext = {
    ...user,
    readOnlyRootFilesystem: user?.readOnlyRootFilesystem ?? true,
    capabilities,
  };
  if (user?.allowPrivilegeEscalation !== undefined || !escalates) {
    context.allowPrivilegeEscalation = user?.allowPrivilegeEscalation ?? false;
  }
  return context;
}
