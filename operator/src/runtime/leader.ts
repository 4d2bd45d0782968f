import { KubeApiError, type KubeClient, microTime } from './kube-client.ts';
import { apiPath } from './kube-path.ts';

export interface LeaderElectionOptions {
  namespace: string;
  /** @defaultValue 'taskfleet-operator' */
  name?: string;
  identity: string;
  /** A leader that has not renewed for this long is replaced. @defaultValue 15_000 */
  leaseDurationMs?: number;
  /** How often to renew or try to acquire. @defaultValue a quarter of the lease duration, at most 2_000 */
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string | null;
    renewTime?: string | null;
    leaseTransitions?: number;
  };
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: the holder renews every
 * retry period; a candidate takes the lease over only when it has seen no renewal for a whole lease
 * duration by its own clock (so clocks need not agree); every write carries the resourceVersion it
 * read, so two candidates cannot both win.
 */
export class LeaderElector {
  readonly #kube: KubeClient;
  readonly #o: Required<Omit<LeaderElectionOptions, 'log'>> & Pick<LeaderElectionOptions, 'log'>;
  #leading = false;
  #observed: { holder: string | null | undefined; renewTime: string | null | undefined; at: number } | undefined;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(kube: KubeClient, options: LeaderElectionOptions) {
    this.#kube = kube;
    const leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#o = {
      name: 'taskfleet-operator',
      retryPeriodMs: Math.min(2_000, Math.floor(leaseDurationMs / 4)),
      ...options,
      leaseDurationMs,
    };
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** The leases of the namespace, or with `name` the lease itself. */
  #path(name?: string): string {
    return apiPath({
      group: 'coordination.k8s.io',
      version: 'v1',
      resource: 'leases',
      namespace: this.#o.namespace,
      ...(name !== undefined ? { name } : {}),
    });
  }

  start(): void {
    void this.#tick();
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    try {
      await this.#tryAcquireOrRenew();
    } catch (error) {
      this.#o.log?.('lease update failed', { error: (error as Error).message });
    }
    // A leader that could not renew for most of a lease duration must assume another may take over.
    if (this.#leading && Date.now() - this.#lastRenew > this.#o.leaseDurationMs * 0.66) this.#setLeading(false);
    if (!this.#stopped) {
      this.#timer = setTimeout(() => void this.#tick(), this.#o.retryPeriodMs);
      this.#timer.unref();
    }
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { name, identity } = this.#o;
    const now = microTime(new Date());
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    const lease = await this.#kube.find<Lease>(this.#path(name));
    if (!lease) {
      await this.#kube.post(this.#path(), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: this.#o.namespace },
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: 0,
        },
      });
      this.#renewed();
      return;
    }
    const holder = lease.spec?.holderIdentity;
    const renewTime = lease.spec?.renewTime;
    if (holder !== this.#observed?.holder || renewTime !== this.#observed?.renewTime) {
      this.#observed = { holder, renewTime, at: Date.now() };
    }
    const expired = Date.now() - (this.#observed?.at ?? 0) > this.#o.leaseDurationMs;
    if (holder && holder !== identity && !expired) {
      this.#setLeading(false);
      return;
    }
    const ours = holder === identity;
    try {
      await this.#kube.put(this.#path(name), {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: lease.metadata,
        spec: {
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: ours ? lease.spec?.acquireTime : now,
          renewTime: now,
          leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + (ours ? 0 : 1),
        },
      });
    } catch (error) {
      // Someone else wrote the lease since we read it: they won this round.
      if (error instanceof KubeApiError && error.code === 409) return;
      throw error;
    }
    this.#renewed();
  }

  #renewed(): void {
    this.#lastRenew = Date.now();
    this.#setLeading(true);
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#o.log?.(leading ? 'became the leader' : 'stopped leading', { identity: this.#o.identity });
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }

  /** Stops electing; a leader gives the lease up so a successor need not wait out the duration. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#setLeading(false);
    try {
      const lease = await this.#kube.get<Lease>(this.#path(this.#o.name));
      if (lease.spec?.holderIdentity === this.#o.identity) {
        await this.#kube.put(this.#path(this.#o.name), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: lease.metadata,
          spec: { ...lease.spec, holderIdentity: null, renewTime: null, acquireTime: null },
        });
      }
    } catch {}
  }
}
