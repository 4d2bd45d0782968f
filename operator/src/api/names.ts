/**
 * Kubernetes names, as the API server validates them (k8s.io/apimachinery/pkg/util/validation): the one
 * source of the patterns. The CRD schema puts them on every field that names an object, the reconciler
 * re-checks TaskQueues admitted under an older CRD with them, and the request path builder
 * (runtime/kube-path.ts) refuses a name that fails them before anything is sent.
 */

/** A DNS-1123 subdomain: the names of Deployments, Secrets, Pods, Leases, TaskQueues… */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
export const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;
/** A DNS-1123 label: the names of namespaces. */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS1123_LABEL_MAX_LENGTH = 63;
/** A key of a Secret's (or ConfigMap's) data. */
export const SECRET_KEY = '^[-._a-zA-Z0-9]+$';
export const SECRET_KEY_MAX_LENGTH = 253;

export type NameKind = 'subdomain' | 'label' | 'secretKey';

const rules: Record<NameKind, { pattern: RegExp; max: number; says: string }> = {
  subdomain: {
    pattern: new RegExp(DNS1123_SUBDOMAIN),
    max: DNS1123_SUBDOMAIN_MAX_LENGTH,
    says: "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
  },
  label: {
    pattern: new RegExp(DNS1123_LABEL),
    max: DNS1123_LABEL_MAX_LENGTH,
    says: "a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit)",
  },
  secretKey: {
    pattern: new RegExp(SECRET_KEY),
    max: SECRET_KEY_MAX_LENGTH,
    says: "a Secret key (letters, digits, '-', '_' and '.')",
  },
};

/**
 * What is wrong with `value` as a name of that kind, in words that do not quote it ("must be a DNS-1123
 * subdomain …"), or undefined when it is valid.
 */
export function nameProblem(kind: NameKind, value: unknown): string | undefined {
  const rule = rules[kind];
  if (typeof value !== 'string' || value.length === 0) return `must be ${rule.says}, and is empty`;
  if (value.length > rule.max) return `must be at most ${rule.max} characters, and is ${value.length}`;
  if (!rule.pattern.test(value)) return `must be ${rule.says}`;
  return undefined;
}

/** A name as a message may show it: JSON-quoted (control characters escaped) and cut at 80 characters. */
export function quoteName(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** One object name a spec gives, where, and what kind of name it must be. */
export interface NamedReference {
  field: string;
  kind: NameKind;
  what: string;
  value: unknown;
}

/** The Secret name and key of a secretKeyRef at `field` (none when the field is unset). */
export function secretKeyReferences(field: string, ref: { secretKeyRef?: unknown } | undefined): NamedReference[] {
  if (ref === undefined) return [];
  const selector = ref.secretKeyRef as { name?: unknown; key?: unknown } | undefined;
  return [
    { field: `${field}.secretKeyRef.name`, kind: 'subdomain', what: 'Secret name', value: selector?.name },
    { field: `${field}.secretKeyRef.key`, kind: 'secretKey', what: 'Secret key', value: selector?.key },
  ];
}
