/**
 * A `Map` that keeps at most `max` entries: `set()` puts its key last (newest), and
 * once over `max` the oldest entries go. What every cache and per-address table
 * here needs so that a stranger's stream of new keys cannot grow memory without bound.
 *
 * ```ts
 * import { BoundedMap } from "./bounded_map.ts";
 *
 * const seen = new BoundedMap<string, number>(2);
 * seen.set("a", 1).set("b", 2).set("a", 3).set("c", 4); // "b" is the oldest: it goes
 * console.assert([...seen.keys()].join() === "a,c");
 * ```
 *
 * @module
 */

/** A `Map` of at most `max` entries, the least recently set going first. */
export class BoundedMap<K, V> extends Map<K, V> {
  /** Entries kept at most. */
  readonly max: number;

  /** `RangeError` when `max` is not a positive integer. */
  constructor(max: number) {
    super();
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Cannot create BoundedMap: max '${max}' is not a positive integer`);
    }
    this.max = max;
  }

  /** Sets `key` as the newest entry, then drops the oldest ones past `max`. */
  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.max) super.delete(super.keys().next().value!);
    return this;
  }
}
