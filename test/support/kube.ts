import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeEndpoint } from '../stack/kube.ts';
import { type Json, taskQueueApi } from '../stack/taskqueue.ts';
import { useKube } from './stack.ts';

const run = promisify(execFile);

/** Runs the stack's kubectl as a user would; returns stdout, or throws with kubectl's own message. */
export async function kubectl(args: readonly string[], options: { input?: string } = {}): Promise<string> {
  const kube = await useKube();
  return kubectlWith(kube, args, options);
}

export async function kubectlWith(
  kube: KubeEndpoint,
  args: readonly string[],
  { input }: { input?: string } = {},
): Promise<string> {
  const child = run(kube.kubectl, args, { env: { ...process.env, KUBECONFIG: kube.kubeconfig } });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    return (await child).stdout;
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`kubectl ${args.join(' ')}: ${stderr?.trim() || (error as Error).message}`);
  }
}

/** A client-node configuration for the stack's admin user. */
export async function adminConfig(): Promise<KubeConfig> {
  const config = new KubeConfig();
  config.loadFromFile((await useKube()).kubeconfig);
  return config;
}

/** A client-node configuration that authenticates with a bearer token (a ServiceAccount's). */
export async function tokenConfig(token: string): Promise<KubeConfig> {
  const kube = await useKube();
  const admin = await adminConfig();
  const cluster = admin.getCurrentCluster();
  if (cluster === null) throw new Error(`no cluster in ${kube.kubeconfig}`);
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'token', token }],
    contexts: [{ name: 'token', cluster: cluster.name, user: 'token' }],
    currentContext: 'token',
  });
  return config;
}

export type { Json };

/**
 * Reads of one namespace's objects as kubectl gives them, for assertions: in the stack's cluster, or in
 * `kube` (a private control plane, test/support/private-kube.ts).
 */
export function inNamespace(namespace: string, kube?: KubeEndpoint) {
  const kubectlIn = (args: readonly string[], options: { input?: string } = {}) =>
    kube ? kubectlWith(kube, args, options) : kubectl(args, options);
  /** The object, or undefined when it does not exist. */
  const get = async (kind: string, name: string): Promise<Json | undefined> => {
    try {
      return JSON.parse(await kubectlIn(['get', kind, name, '-n', namespace, '-o', 'json']));
    } catch (error) {
      if (/NotFound/.test((error as Error).message)) return undefined;
      throw error;
    }
  };
  return {
    get,
    /** `kubectl apply`s a TaskQueue of this namespace with that spec. */
    applyTaskQueue: (name: string, spec: Json) =>
      kubectlIn(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: taskQueueApi, kind: 'TaskQueue', metadata: { name, namespace }, spec }),
      }),
    /** `kubectl create secret generic` in this namespace, one literal per key. */
    createSecret: (name: string, data: Record<string, string>) =>
      kubectlIn([
        'create',
        'secret',
        'generic',
        name,
        '-n',
        namespace,
        ...Object.entries(data).map(([k, v]) => `--from-literal=${k}=${v}`),
      ]),
    replicas: async (deployment: string) => (await get('deployment', deployment))?.spec?.replicas as number | undefined,
    /** The Events of an object, as `Reason: message`. */
    events: async (name: string) =>
      (
        JSON.parse(
          await kubectlIn([
            'get',
            'events',
            '-n',
            namespace,
            '--field-selector',
            `involvedObject.name=${name}`,
            '-o',
            'json',
          ]),
        ).items as Json[]
      ).map((e) => `${e.reason}: ${e.message}`),
  };
}

/** A TaskQueue's condition of that type. */
export function condition(tq: Json | undefined, type: string): Json | undefined {
  return (tq?.status?.conditions as Json[] | undefined)?.find((c) => c.type === type);
}
