import { readFile } from 'node:fs/promises';
import { useKube } from './stack.ts';

/** The fields of an audit.k8s.io/v1 Event that the tests read. */
export interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
}

/**
 * The completed requests the stack's API server audited (Secrets and deployments/scale, at Metadata:
 * test/stack/kube.ts) by `username`. The log is written before each response is sent, so it holds every
 * request that has returned.
 */
export async function auditedRequests(username: string): Promise<AuditEvent[]> {
  const { auditLog } = await useKube();
  return (await readFile(auditLog, 'utf8'))
    .split('\n')
    .filter((line) => line.includes(username))
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter((e) => e.stage === 'ResponseComplete' && e.user.username === username);
}

/** `verb namespace/resource[/subresource]/name → code`, for assertion messages. */
export function describeRequest(e: AuditEvent): string {
  const ref = e.objectRef ?? {};
  const resource = [ref.resource, ref.subresource].filter(Boolean).join('/');
  return `${e.verb} ${ref.namespace ?? ''}/${resource}/${ref.name ?? ''} → ${e.responseStatus?.code ?? '?'}`;
}
