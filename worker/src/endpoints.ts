/**
 * Which broker and result backend an app talks to: one rule for a producer importing the tasks module
 * and for the `taskfleet worker` (or beat, or any command) that imports the same module, so they cannot
 * silently use different ones. Celery's rule, whose CELERY_BROKER_URL wins over the configured
 * broker_url: what configure() was given (the CLI's --broker and --backend), then the environment
 * (TASKFLEET_BROKER, TASKFLEET_BACKEND), then what the code passed to `new Taskfleet()`, then the default.
 */

export const DEFAULT_BROKER_URL = 'redis://127.0.0.1:6379';

export type EndpointKind = 'broker' | 'backend';

export interface EndpointSources {
  /** What configure() was given: the CLI's --broker and --backend flags. */
  configured: { broker?: string | undefined; backend?: string | undefined };
  /** The process' environment. An empty variable counts as unset. */
  env: Readonly<Record<string, string | undefined>>;
  /** What the code passed to `new Taskfleet()`. */
  written: { broker?: string | undefined; backend?: string | undefined };
}

export interface Endpoint {
  url: string;
  /** Where the URL came from, in the words a message can use: `TASKFLEET_BROKER`, `the app's broker option`. */
  from: string;
}

const ENDPOINT_ENV: Record<EndpointKind, string> = {
  broker: 'TASKFLEET_BROKER',
  backend: 'TASKFLEET_BACKEND',
};

/** The broker's or backend's URL and its source; undefined for a backend nobody set (there is no default). */
export function resolveEndpoint(kind: EndpointKind, sources: EndpointSources): Endpoint | undefined {
  const configured = sources.configured[kind];
  if (configured !== undefined && configured !== '') return { url: configured, from: `--${kind} (configure())` };
  const env = sources.env[ENDPOINT_ENV[kind]];
  if (env !== undefined && env !== '') return { url: env, from: ENDPOINT_ENV[kind] };
  const written = sources.written[kind];
  if (written !== undefined) return { url: written, from: `the app's ${kind} option` };
  return kind === 'broker' ? { url: DEFAULT_BROKER_URL, from: 'the default' } : undefined;
}
