import { kubectl } from './kube.ts';

const crd = new URL('../../crds/taskqueues.taskfleet.dev.yaml', import.meta.url).pathname;

let installed: Promise<void> | undefined;

/** Installs the project's CRDs into the stack's cluster (once per process) and waits until they are served. */
export function installCrds(): Promise<void> {
  installed ??= (async () => {
    await kubectl(['apply', '--server-side', '--force-conflicts', '-f', crd]);
    await kubectl(['wait', '--for=condition=Established', 'crd/taskqueues.taskfleet.dev', '--timeout=60s']);
  })();
  return installed;
}
