#!/usr/bin/env node
/**
 * `taskfleet-operator`: runs the operator in a cluster (in-cluster credentials) or against a kubeconfig.
 * Flags have environment variables, as the Helm chart sets them.
 */
import { parseArgs } from 'node:util';
import { createLogger, parseLogLevel, serveObservability } from 'taskfleet';
import { FlagError, parseBoolean, parseWatchNamespaces, parseWorkerResources } from './runtime/flags.ts';
import { KubeConfig } from './runtime/kubernetes.ts';
import { Operator } from './runtime/operator.ts';

const usage = `taskfleet-operator — scales each TaskQueue's workers from its broker's backlog

Options (each also an environment variable):
  --kubeconfig <file>        KUBECONFIG                  default: in-cluster service account, else ~/.kube/config
  --namespace <ns>           POD_NAMESPACE               namespace of the leader-election Lease (default: default)
  --identity <id>            POD_NAME                    this replica's name in the Lease (default: hostname)
  --metrics-port <port>      TASKFLEET_METRICS_PORT      /metrics, /healthz, /readyz (default 8080; 0: off)
  --leader-elect <bool>      TASKFLEET_LEADER_ELECT      default true
  --lease-duration <ms>      TASKFLEET_LEASE_DURATION    default 15000
  --log-level <level>        TASKFLEET_LOG_LEVEL         debug, info, warn, error (default info)
  --watch-namespaces <a,b>   TASKFLEET_WATCH_NAMESPACES  watch TaskQueues only in these namespaces, each with
                                                         its own informers, so Roles there suffice (default:
                                                         empty, every namespace, which needs a ClusterRole)
  --read-secrets <bool>      TASKFLEET_READ_SECRETS      read the Secrets a TaskQueue names to probe its broker
                                                         (default true). false: never GET a Secret; workers
                                                         still get them by reference, and a queue whose probe
                                                         needs one reports BrokerReachable=False SecretsNotRead
  --worker-resources <json>  TASKFLEET_WORKER_RESOURCES  resources of worker containers that set none (default
                                                         {"requests":{"cpu":"100m","memory":"128Mi"},
                                                         "limits":{"memory":"512Mi"}}; {} adds none)
`;

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    namespace: { type: 'string' },
    identity: { type: 'string' },
    'metrics-port': { type: 'string' },
    'leader-elect': { type: 'string' },
    'lease-duration': { type: 'string' },
    'log-level': { type: 'string' },
    'watch-namespaces': { type: 'string' },
    'read-secrets': { type: 'string' },
    'worker-resources': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const env = (flag: string | undefined, name: string) => flag ?? (process.env[name] || undefined);
// Checked before anything else, so that a mistake stops the operator at once, naming the flag.
let tenancy: {
  watchNamespaces: string[];
  readSecrets: boolean;
  workerResources: ReturnType<typeof parseWorkerResources>;
};
try {
  tenancy = {
    watchNamespaces: parseWatchNamespaces(env(values['watch-namespaces'], 'TASKFLEET_WATCH_NAMESPACES')),
    readSecrets: parseBoolean(
      '--read-secrets (TASKFLEET_READ_SECRETS)',
      env(values['read-secrets'], 'TASKFLEET_READ_SECRETS'),
      true,
    ),
    workerResources: parseWorkerResources(env(values['worker-resources'], 'TASKFLEET_WORKER_RESOURCES')),
  };
} catch (error) {
  if (!(error instanceof FlagError)) throw error;
  console.error(`taskfleet-operator: ${error.message}`);
  process.exit(2);
}
const logger = createLogger(parseLogLevel(env(values['log-level'], 'TASKFLEET_LOG_LEVEL') ?? 'info'));
const config = new KubeConfig();
const kubeconfig = env(values.kubeconfig, 'KUBECONFIG');
if (kubeconfig) config.loadFromFile(kubeconfig);
else config.loadFromDefault();

const leaseDuration = env(values['lease-duration'], 'TASKFLEET_LEASE_DURATION');
const operator = new Operator(config, {
  namespace: env(values.namespace, 'POD_NAMESPACE') ?? 'default',
  ...(env(values.identity, 'POD_NAME') ? { identity: env(values.identity, 'POD_NAME') as string } : {}),
  leaderElection: env(values['leader-elect'], 'TASKFLEET_LEADER_ELECT') !== 'false',
  ...(leaseDuration ? { leaseDurationMs: Number(leaseDuration) } : {}),
  watchNamespaces: tenancy.watchNamespaces,
  readSecrets: tenancy.readSecrets,
  ...(tenancy.workerResources ? { workerResources: tenancy.workerResources } : {}),
  logger,
});
const metricsPort = Number(env(values['metrics-port'], 'TASKFLEET_METRICS_PORT') ?? 8080);
if (metricsPort > 0) {
  await serveObservability(metricsPort, operator.metrics.registry, { live: () => true, ready: () => operator.ready });
}
let stopping = false;
const stop = (signal: string) => {
  if (stopping) process.exit(1);
  stopping = true;
  logger.info(`${signal}: stopping (the lease is released for the next leader)`);
  operator.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
await operator.start();
logger.info('operator started', {
  identity: operator.identity,
  watchNamespaces: tenancy.watchNamespaces.length > 0 ? tenancy.watchNamespaces : 'all',
  readSecrets: tenancy.readSecrets,
});
