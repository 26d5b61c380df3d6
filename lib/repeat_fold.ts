/**
 * Folds repeats of one event into a count, so that a flood of the same refusal
 * cannot fill a log: within each window (a minute by default) the first `keep`
 * events of a key are let through one by one, and the rest are counted and told
 * once, when their window ends, as one summary with their number and time span.
 * At most `maxKeys` keys are followed; once that many are live, new keys share one
 * overflow key (`OVERFLOW_KEY`), so that many addresses cannot grow memory either.
 * So each key costs at most `keep + 1` records a window, whatever it sends.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RepeatFold } from "./repeat_fold.ts";
 *
 * const told: number[] = [];
 * const fold = new RepeatFold((s) => told.push(s.count), { keep: 2 });
 * const let_through = [1, 2, 3, 4, 5].map(() => fold.note("127.0.0.1 unauthorized").pass);
 * assert.deepEqual(let_through, [true, true, false, false, false]);
 * fold.close(); // tells what is still counted
 * assert.deepEqual(told, [3]);
 * ```
 *
 * @module
 */

/** The key that stands for every key over `maxKeys`. */
export const OVERFLOW_KEY = "*";

/** What one summary tells of the events it folded. */
export interface FoldSummary {
  /** The key, or `OVERFLOW_KEY`. */
  key: string;
  /** Events folded (not let through) in the window. */
  count: number;
  /** When the first and the last of them came, in ms of the clock. */
  first: number;
  last: number;
}

/** Options of `RepeatFold`. */
export interface RepeatFoldOptions {
  /** Length of a window, in ms (60 s). */
  windowMs?: number;
  /** Events of a key let through one by one in each window (5). */
  keep?: number;
  /** Keys followed at once (1024); more share `OVERFLOW_KEY`. */
  maxKeys?: number;
  /** The time in ms (`Date.now`). */
  clock?: () => number;
}

interface Window {
  start: number;
  seen: number;
  folded: number;
  first: number;
  last: number;
}

/** Lets through the first events of a key in each window and counts the rest. */
export class RepeatFold {
  readonly #emit: (summary: FoldSummary) => void;
  readonly #windowMs: number;
  readonly #keep: number;
  readonly #maxKeys: number;
  readonly #clock: () => number;
  readonly #windows = new Map<string, Window>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastSweep = 0;
  #closed = false;

  /** `emit` is called with each summary, when its window ends (or at `flush()`). */
  constructor(emit: (summary: FoldSummary) => void, opts: RepeatFoldOptions = {}) {
    this.#emit = emit;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#keep = opts.keep ?? 5;
    this.#maxKeys = opts.maxKeys ?? 1024;
    this.#clock = opts.clock ?? Date.now;
    if (!(this.#windowMs > 0) || !Number.isInteger(this.#keep) || this.#keep < 0) {
      throw new RangeError(
        `Fold window '${this.#windowMs}' ms and keep '${this.#keep}' must be positive`,
      );
    }
  }

  /** Keys followed now. */
  get size(): number {
    return this.#windows.size;
  }

  /**
   * Notes one event of `key`: `pass` is true when the caller should record it now,
   * false when it was counted for the window's summary. `key` is the key it was
   * counted under (`OVERFLOW_KEY` once `maxKeys` are live).
   */
  note(key: string): { pass: boolean; key: string } {
    if (this.#closed) return { pass: true, key };
    const now = this.#clock();
    let w = this.#windows.get(key);
    if (w && now - w.start >= this.#windowMs) {
      this.#end(key, w);
      w = undefined;
    }
    if (!w) {
      // When full, the windows that are over go first, at most once a second: a
      // flood from many addresses costs one pass over the keys a second.
      if (this.#windows.size >= this.#maxKeys && now - this.#lastSweep >= 1000) {
        this.#lastSweep = now;
        this.#endExpired(now);
      }
      if (this.#windows.size >= this.#maxKeys) {
        key = OVERFLOW_KEY;
        w = this.#windows.get(key);
      }
      if (!w) {
        w = { start: now, seen: 0, folded: 0, first: 0, last: 0 };
        this.#windows.set(key, w);
      }
    }
    w.seen++;
    if (w.seen <= this.#keep) return { pass: true, key };
    if (w.folded++ === 0) w.first = now;
    w.last = now;
    this.#arm(now);
    return { pass: false, key };
  }

  /** Tells every summary still counted, and forgets every window. */
  flush(): void {
    for (const [key, w] of [...this.#windows]) this.#end(key, w);
    this.#disarm();
  }

  /** Flushes (and so stops the timer), and lets every later event through. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
  }

  /** Ends the windows that are over, telling their summaries. */
  #endExpired(now: number): void {
    for (const [key, w] of [...this.#windows]) {
      if (now - w.start >= this.#windowMs) this.#end(key, w);
    }
  }

  #end(key: string, w: Window): void {
    this.#windows.delete(key);
    if (w.folded === 0) return;
    try {
      this.#emit({ key, count: w.folded, first: w.first, last: w.last });
    } catch { /* a failing listener must not lose the other summaries */ }
  }

  /** One timer for the earliest window with folded events. */
  #arm(now: number): void {
    if (this.#timer !== undefined) return;
    let end = Infinity;
    for (const w of this.#windows.values()) {
      if (w.folded > 0) end = Math.min(end, w.start + this.#windowMs);
    }
    if (end === Infinity) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const at = this.#clock();
      this.#endExpired(at);
      this.#arm(at);
    }, Math.max(0, end - now));
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
