/**
 * The tracker's memory of what it already took within the freshness window: request
 * nonces and identity signatures. Each entry is kept until its window has passed,
 * and the cache holds at most `max` entries; when it is full of live entries it
 * refuses to remember more (and the request is refused with `503 busy`), rather
 * than forget one that could then be played again.
 *
 * @module
 */

/** A bounded set of recently seen values, each forgotten once its time is up. */
export class ReplayCache {
  readonly #max: number;
  readonly #clock: () => number;
  /** value → time (ms) after which it may be forgotten; insertion order is expiry order. */
  readonly #seen = new Map<string, number>();

  constructor(opts: { max?: number; clock?: () => number } = {}) {
    this.#max = opts.max ?? 200_000;
    this.#clock = opts.clock ?? Date.now;
  }

  /** Entries held now. */
  get size(): number {
    return this.#seen.size;
  }

  /**
   * Remembers `value` until `until` (ms). Returns `"new"`, `"seen"` when it is already
   * remembered (a replay), or `"full"` when there is no room.
   */
  remember(value: string, until: number): "new" | "seen" | "full" {
    const now = this.#clock();
    const known = this.#seen.get(value);
    if (known !== undefined && known > now) return "seen";
    this.#sweep(now);
    if (this.#seen.size >= this.#max) return "full";
    this.#seen.set(value, until);
    return "new";
  }

  /** Forgets entries whose time is up, oldest first (entries all live for one window). */
  #sweep(now: number): void {
    for (const [value, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(value);
    }
  }
}
