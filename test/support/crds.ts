import type { KubeEndpoint } from '../stack/kube.ts';
import { eventually } from './eventually.ts';
import { kubectlWith } from './kube.ts';
import { useKube } from './stack.ts';

const crd = new URL('../../crds/taskqueues.taskfleet.dev.yaml', import.meta.url).pathname;

/** Installs the project's CRDs into a cluster and waits until they are served. */
export async function installCrdsInto(kube: KubeEndpoint): Promise<void> {
  await kubectlWith(kube, ['apply', '--server-side', '--force-conflicts', '-f', crd]);
  // Not `kubectl wait`: on a CRD just created, before the API server has written any condition, it
  // fails ("status.conditions accessor error") instead of waiting.
  await eventually(
    'the TaskQueue CRD to be Established',
    async () =>
      (
        await kubectlWith(kube, [
          'get',
          'crd/taskqueues.taskfleet.dev',
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
