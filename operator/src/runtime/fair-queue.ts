/**
 * Items waiting for a shared resource (reconcile loops, probe slots), served fairly between namespaces,
 * so that one tenant's slow work cannot hold every loop or slot while another tenant waits:
 *
 * - round-robin: the next item comes from the namespace served least recently among those with items
 *   waiting, not from the longest line;
 * - a fair share: a namespace already holding `share` units is served only when no namespace under its
 *   share has items waiting;
 * - a reserve: a namespace at or over its share never takes the last `reserve` free units, so a tenant
 *   that arrives later is served at once instead of waiting for someone else's slow work to end.
 *
 * A namespace can always hold up to `share` units (when they are free), so nothing starves. Pure
 * bookkeeping: the caller says how many units are free and marks each unit taken and given back.
 */
export class FairQueue<T> {
  /** Waiting items per namespace; the Map's order is the round-robin order (served last, last). */
  readonly #waiting = new Map<string, T[]>();
  readonly #active = new Map<string, number>();
  readonly #share: number;
  readonly #reserve: number;
  #size = 0;

  /**
   * @param share units a namespace may hold whoever waits (at least 1).
   * @param reserve free units a namespace at or over its share leaves to others. @defaultValue 1
   */
  constructor({ share, reserve = 1 }: { share: number; reserve?: number }) {
    if (!(Number.isInteger(share) && share >= 1)) throw new RangeError(`share must be an integer ≥ 1, not ${share}`);
    if (!(Number.isInteger(reserve) && reserve >= 0))
      throw new RangeError(`reserve must be an integer ≥ 0, not ${reserve}`);
    this.#share = share;
    this.#reserve = reserve;
  }

  /** Items waiting, all namespaces together. */
  get size(): number {
    return this.#size;
  }

  /** Units a namespace holds now. */
  active(namespace: string): number {
    return this.#active.get(namespace) ?? 0;
  }

  push(namespace: string, item: T): void {
    const line = this.#waiting.get(namespace);
    if (line) line.push(item);
    else this.#waiting.set(namespace, [item]);
    this.#size++;
  }

  /**
   * The next item to give one of `free` free units to, marked as holding it (give it back with
   * {@link release}); undefined when nothing may be served now.
   */
  take(free: number): { namespace: string; item: T } | undefined {
    if (free <= 0) return undefined;
    let chosen: string | undefined;
    for (const namespace of this.#waiting.keys()) {
      if (this.active(namespace) < this.#share) {
        chosen = namespace;
        break;
      }
    }
    // Everyone waiting is at its share: the one holding least goes next, if the reserve allows it.
    if (chosen === undefined && free > this.#reserve) {
      let least = Number.POSITIVE_INFINITY;
      for (const namespace of this.#waiting.keys()) {
        if (this.active(namespace) < least) {
          least = this.active(namespace);
          chosen = namespace;
        }
      }
    }
    if (chosen === undefined) return undefined;
    const line = this.#waiting.get(chosen) as T[];
    const item = line.shift() as T;
    this.#size--;
    // Served: to the back of the round.
    this.#waiting.delete(chosen);
    if (line.length > 0) this.#waiting.set(chosen, line);
    this.#active.set(chosen, this.active(chosen) + 1);
    return { namespace: chosen, item };
  }

  /** A unit the namespace held is free again. */
  release(namespace: string): void {
    const active = this.active(namespace) - 1;
    if (active > 0) this.#active.set(namespace, active);
    else this.#active.delete(namespace);
  }

  /** Drops every waiting item (they are not served). */
  clear(): T[] {
    const items = [...this.#waiting.values()].flat();
    this.#waiting.clear();
    this.#size = 0;
    return items;
  }
}

/** The namespace of a `namespace/name` key ('' for a key without one). */
export function namespaceOf(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? '' : key.slice(0, slash);
}
