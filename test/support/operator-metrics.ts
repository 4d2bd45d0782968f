import { freePort } from '../stack/process.ts';

export { freePort };

/**
 * The operator's `taskfleet_operator_api_requests_total` from its /metrics, as `VERB resource` → count
 * (e.g. `GET secrets`): every request it sent the API server, watches excluded. What a test asserts was
 * never sent (a GET of a Secret) is absent from it.
 */
export async function apiRequests(metricsPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^taskfleet_operator_api_requests_total\{(.*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries(
      [...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    counts.set(`${labels.verb} ${labels.resource}`, Number(match[2]));
  }
  return counts;
}

/** Requests sent for `resource` (any verb). */
export function requestsFor(counts: Map<string, number>, resource: string): number {
  let total = 0;
  for (const [key, n] of counts) if (key.split(' ')[1] === resource) total += n;
  return total;
}
