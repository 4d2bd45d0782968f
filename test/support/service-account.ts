import { writeFile } from 'node:fs/promises';
import type { KubeEndpoint } from '../stack/kube.ts';
import { kubectlWith } from './kube.ts';

/**
 * Writes, at `file`, a kubeconfig for `kube`'s API server whose user is the ServiceAccount
 * `namespace/name`, authenticating with a token the API server issues for it (`kubectl create token`):
 * what a pod running as that ServiceAccount gets, for a process run outside the cluster.
 */
export async function serviceAccountKubeconfig(
  kube: KubeEndpoint,
  namespace: string,
  name: string,
  { file, duration = '2h' }: { file: string; duration?: string },
): Promise<string> {
  const kubectl = (args: readonly string[]) => kubectlWith(kube, args);
  const token = (await kubectl(['create', 'token', name, '-n', namespace, `--duration=${duration}`])).trim();
  const ca = (
    await kubectl(['config', 'view', '--raw', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority-data}'])
  ).trim();
  await writeFile(
    file,
    `apiVersion: v1
kind: Config
clusters: [{ name: stack, cluster: { server: ${kube.server}, certificate-authority-data: ${ca} } }]
users: [{ name: ${name}, user: { token: ${token} } }]
contexts: [{ name: ${name}, context: { cluster: stack, user: ${name} } }]
current-context: ${name}
`,
    { mode: 0o600 },
  );
  return file;
}
