/**
 * A bound on how many lines of one kind a worker logs: a flood of bad messages (2,000 unknown task
 * names, say) must not become 2,000 log lines, while the first few still say what is wrong. Beyond
 * `perWindow` lines of a kind in a window, lines are only counted, and the count is logged once, when
 * the next line of that kind comes after the window (or at shutdown).
 */
export class LogBudget {
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #kinds = new Map<string, { since: number; written: number; suppressed: number }>();

  constructor({ perWindow = 10, windowMs = 60_000, now = Date.now } = {}) {
    this.#perWindow = perWindow;
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /**
   * Whether a line of `kind` may be written now, and how many of that kind went unwritten in the
   * window that just ended (to be reported first; 0 mostly).
   */
  take(kind: string): { write: boolean; suppressed: number } {
    const now = this.#now();
    let state = this.#kinds.get(kind);
    let suppressed = 0;
    if (!state || now - state.since >= this.#windowMs) {
      suppressed = state?.suppressed ?? 0;
      state = { since: now, written: 0, suppressed: 0 };
      this.#kinds.set(kind, state);
    }
    if (state.written < this.#perWindow) {
      state.written++;
      return { write: true, suppressed };
    }
    state.suppressed++;
    return { write: false, suppressed };
  }

  /** Lines counted and not written, per kind, since their window began; forgets them. */
  drain(): Map<string, number> {
    const left = new Map<string, number>();
    for (const [kind, state] of this.#kinds) if (state.suppressed > 0) left.set(kind, state.suppressed);
    this.#kinds.clear();
    return left;
  }
}
