import type { KubeEndpoint } from '../stack/kube.ts';
import { eventually } from './eventually.ts';
import { kubectlWith } from './kube.ts';
import { useKube } from './stack.ts';

const crd = new URL('../../crds/taskqueues.taskfleet.dev.yaml', import.meta.url).pathname;

/** Installs the project's CRDs into a cluster and waits until they are served. */
export async function installCrdsInto(kube: KubeEndpoint): Promise<void> {
  await kubectlWith(kube, ['apply', '--server-side', '--force-conflicts', '-f', crd]);
  await crdEstablished(kube, 'taskqueues.taskfleet.dev');
}

/** Waits until the CRD `name` (e.g. `taskqueues.taskfleet.dev`) is Established: its resource is served. */
export async function crdEstablished(kube: KubeEndpoint, name: string): Promise<void> {
  // Not `kubectl wait`: on a CRD just created, before the API server has written any condition, it
  // fails ("status.conditions accessor error") instead of waiting.
  await eventually(
    `the CRD ${name} to be Established`,
    async () =>
      (
        await kubectlWith(kube, [
          'get',
          `crd/${name}`,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        ])
      ).trim() === 'True',
    60_000,
  );
}

let installed: Promise<void> | undefined;

/** Installs the CRDs into the stack's cluster, once per process (again after a failure). */
export function installCrds(): Promise<void> {
  installed ??= useKube()
    .then(installCrdsInto)
    .catch((error: unknown) => {
      installed = undefined;
      throw error;
    });
  return installed;
}
