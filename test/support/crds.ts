import type { KubeEndpoint } from '../stack/kube.ts';
import { kubectlWith } from './kube.ts';
import { useKube } from './stack.ts';

const crd = new URL('../../crds/taskqueues.taskfleet.dev.yaml', import.meta.url).pathname;

/** Installs the project's CRDs into a cluster and waits until they are served. */
export async function installCrdsInto(kube: KubeEndpoint): Promise<void> {
  await kubectlWith(kube, ['apply', '--server-side', '--force-conflicts', '-f', crd]);
  await kubectlWith(kube, ['wait', '--for=condition=Established', 'crd/taskqueues.taskfleet.dev', '--timeout=60s']);
}

let installed: Promise<void> | undefined;

/** Installs the CRDs into the stack's cluster, once per process. */
export function installCrds(): Promise<void> {
  installed ??= useKube().then(installCrdsInto);
  return installed;
}
