/**
 * The operator's flags that take more than a word, parsed and checked in one place: an error names the
 * flag and its variable, says what is wrong and what is expected.
 */
import type { V1ResourceRequirements } from '@kubernetes/client-node';
import { TaskfleetError } from 'taskfleet';
import { nameProblem, quoteName } from '../api/names.ts';

export class FlagError extends TaskfleetError {
  override name = 'FlagError';
  constructor(message: string) {
    super('INVALID_FLAG', message);
  }
}

/** `a,b` → ['a', 'b']; empty or unset → [] (every namespace). Each must be a namespace name. */
export function parseWatchNamespaces(text: string | undefined): string[] {
  const namespaces = [
    ...new Set(
      (text ?? '')
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    ),
  ];
  for (const namespace of namespaces) {
    const problem = nameProblem('label', namespace);
    if (problem) {
      throw new FlagError(
        `--watch-namespaces (TASKFLEET_WATCH_NAMESPACES): ${quoteName(namespace)} is not a namespace name: it ${problem}. Give a comma-separated list, e.g. team-a,team-b, or nothing for every namespace`,
      );
    }
  }
  return namespaces;
}

/** `true` or `false` (unset: `fallback`). */
export function parseBoolean(flag: string, text: string | undefined, fallback: boolean): boolean {
  if (text === undefined || text === '') return fallback;
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new FlagError(`${flag} must be true or false, not ${quoteName(text)}`);
}

const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE])?$/;

/**
 * `--worker-resources` (TASKFLEET_WORKER_RESOURCES): a container's `resources` as JSON, e.g.
 * `{"requests":{"cpu":"200m","memory":"256Mi"},"limits":{"memory":"1Gi"}}`; `{}` adds none. Unset: undefined
 * (the built-in defaults).
 */
export function parseWorkerResources(text: string | undefined): V1ResourceRequirements | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const where = '--worker-resources (TASKFLEET_WORKER_RESOURCES)';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FlagError(
      `${where} is not JSON (${(error as Error).message}): give a container's resources, e.g. {"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FlagError(`${where} must be a JSON object with requests and/or limits`);
  }
  const out: V1ResourceRequirements = {};
  for (const [section, quantities] of Object.entries(value)) {
    if (section !== 'requests' && section !== 'limits') {
      throw new FlagError(`${where} has ${quoteName(section)}: only requests and limits are allowed`);
    }
    if (typeof quantities !== 'object' || quantities === null || Array.isArray(quantities)) {
      throw new FlagError(`${where}: ${section} must be an object of quantities, e.g. {"cpu":"100m"}`);
    }
    const parsed: Record<string, string> = {};
    for (const [resource, quantity] of Object.entries(quantities)) {
      const q = typeof quantity === 'number' ? String(quantity) : quantity;
      if (typeof q !== 'string' || !QUANTITY.test(q)) {
        throw new FlagError(
          `${where}: ${section}.${resource} is not a quantity (${quoteName(String(quantity))}): use e.g. 100m, 0.5, 128Mi, 1Gi`,
        );
      }
      parsed[resource] = q;
    }
    out[section] = parsed;
  }
  return out;
}
