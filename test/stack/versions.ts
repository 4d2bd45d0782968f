import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The pinned versions of versions.env, shared with build.sh. */
export const versions = Object.fromEntries(
  readFileSync(new URL('versions.env', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => line.split('=', 2) as [string, string]),
) as Record<'KUBE_VERSION' | 'ETCD_VERSION' | 'HELM_VERSION' | 'KAFKA_VERSION', string>;

export const cacheDir = process.env.TASKFLEET_CACHE ?? join(homedir(), '.cache', 'taskfleet');

export type Component = 'kube' | 'etcd' | 'helm' | 'kafka';

const versionOf: Record<Component, string> = {
  kube: versions.KUBE_VERSION,
  etcd: versions.ETCD_VERSION,
  helm: versions.HELM_VERSION,
  kafka: versions.KAFKA_VERSION,
};

/** Where build.sh caches a component: `<cache>/<component>-<version>`. */
export function cachePath(component: Component): string {
  return join(cacheDir, `${component}-${versionOf[component]}`);
}
