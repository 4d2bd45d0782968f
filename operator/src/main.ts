#!/usr/bin/env node
/**
 * `taskfleet-operator`: runs the operator in a cluster (in-cluster credentials) or against a kubeconfig.
 * Flags have environment variables, as the Helm chart sets them.
 */
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { createLogger, parseLogLevel, serveObservability } from 'taskfleet';
import { Operator } from './runtime/operator.ts';

const usage = `taskfleet-operator — scales each TaskQueue's workers from its broker's backlog

Options (each also an environment variable):
  --kubeconfig <file>      KUBECONFIG               default: in-cluster service account, else ~/.kube/config
  --namespace <ns>         POD_NAMESPACE            namespace of the leader-election Lease (default: default)
  --identity <id>          POD_NAME                 this replica's name in the Lease (default: hostname)
  --metrics-port <port>    TASKFLEET_METRICS_PORT   /metrics, /healthz, /readyz (default 8080; 0: off)
  --leader-elect <bool>    TASKFLEET_LEADER_ELECT   default true
  --lease-duration <ms>    TASKFLEET_LEASE_DURATION default 15000
  --log-level <level>      TASKFLEET_LOG_LEVEL      debug, info, warn, error (default info)
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
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const env = (flag: string | undefined, name: string) => flag ?? (process.env[name] || undefined);
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
logger.info('operator started', { identity: operator.identity });
