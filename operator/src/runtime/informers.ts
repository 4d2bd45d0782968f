import type {
  Informer,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
  ObjectCache,
} from '@kubernetes/client-node';
import { KubeApiError, type KubeClient } from './kube-client.ts';
import { apiPath } from './kube-path.ts';
import { makeInformer } from './kubernetes.ts';

type Cached<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export interface InformerOptions<T> {
  /** What the objects are, for the log (`Deployment`). */
  what: string;
  group: string;
  version: string;
  resource: string;
  labelSelector?: string;
  /**
   * A resource that may not be served (a CRD not installed, such as KEDA's ScaledObject) or that the
   * operator may not be allowed to list: while the API server answers 404 (or 403) the cache stays empty,
   * and the informer looks again every `absentRetryMs` — quietly for a 404, with a warning for a 403.
   */
  optional?: boolean;
  /** @defaultValue 60_000 */
  absentRetryMs?: number;
  /** Slims each object as it enters the cache (drop what nothing reads). */
  slim?: (object: T) => void;
  log: (level: 'warn' | 'debug', msg: string, fields?: Record<string, unknown>) => void;
  stopping: () => boolean;
}

/** The answer standing for "not served" (404) or "not allowed" (403) on the list of an optional resource. */
class Absent extends Error {
  readonly forbidden: boolean;
  constructor(forbidden: boolean) {
    super(forbidden ? 'forbidden' : 'not served');
    this.forbidden = forbidden;
  }
}

/**
 * One kind of object cached by list-and-watch: one informer for the whole cluster, or — with
 * `namespaces` — one per namespace, so that the operator needs no cluster-wide right to list or watch
 * (it then runs with a Role in each namespace it watches). Informers that fail are restarted a second
 * later. Cached objects drop their managedFields, which nothing here reads and which are most of a
 * Deployment's size.
 */
export class Informers<T extends KubernetesObject> {
  /** namespace → its informer; '' → the cluster-wide one. */
  readonly #informers = new Map<string, Cached<T>>();

  constructor(config: KubeConfig, kube: KubeClient, namespaces: readonly string[], options: InformerOptions<T>) {
    const scopes = namespaces.length > 0 ? namespaces : [''];
    for (const namespace of scopes) {
      const path = apiPath({
        group: options.group,
        version: options.version,
        resource: options.resource,
        ...(namespace ? { namespace } : {}),
      });
      const query: Record<string, string> = options.labelSelector ? { labelSelector: options.labelSelector } : {};
      const list = async () => {
        try {
          return await kube.get<KubernetesListObject<T>>(path, query);
        } catch (error) {
          if (options.optional && error instanceof KubeApiError && (error.code === 404 || error.code === 403)) {
            throw new Absent(error.code === 403);
          }
          throw error;
        }
      };
      const informer = makeInformer<T>(config, path, list, options.labelSelector);
      const slim = (object: T) => {
        if (object.metadata) delete object.metadata.managedFields;
        options.slim?.(object);
      };
      informer.on('add', slim);
      informer.on('update', slim);
      informer.on('error', (error) => {
        if (options.stopping()) return;
        const absent = error instanceof Absent;
        const where = namespace ? { namespace } : {};
        if (absent && error.forbidden) {
          options.log('warn', `${options.what}: no right to list them, so none are seen; looking again later`, where);
        } else if (absent) options.log('debug', `${options.what} is not served; looking again later`, where);
        else
          options.log('warn', `${options.what} watch failed; restarting it`, {
            ...where,
            error: (error as Error)?.message,
          });
        setTimeout(
          () => void informer.start().catch(() => {}),
          absent ? (options.absentRetryMs ?? 60_000) : 1000,
        ).unref();
      });
      this.#informers.set(namespace, informer);
    }
  }

  get(name: string, namespace: string): T | undefined {
    return (this.#informers.get('') ?? this.#informers.get(namespace))?.get(name, namespace);
  }

  /** The objects of one namespace, or every object cached. */
  list(namespace?: string): readonly T[] {
    if (namespace === undefined) return [...this.#informers.values()].flatMap((i) => i.list());
    return (this.#informers.get('') ?? this.#informers.get(namespace))?.list(namespace) ?? [];
  }

  on(event: 'add' | 'update' | 'delete', callback: (object: T) => void): void {
    for (const informer of this.#informers.values()) informer.on(event, callback);
  }

  /** Lists (and starts watching) everywhere; resolves when every list has answered. */
  async start(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#informers.values()].map((i) => i.stop()));
  }
}
