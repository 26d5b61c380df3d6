/**
 * The peer's background timers in one place: one-off tasks (`later`) and loops that
 * say when they want to run next (`loop`). A task's failure goes to `onError` and
 * never stops a loop; `stop()` clears every timer at once, and nothing is scheduled
 * after it, so a stopping peer leaves no timer behind.
 *
 * ```ts
 * import { Scheduler } from "./scheduler.ts";
 *
 * const scheduler = new Scheduler((err) => console.error(err));
 * const { promise, resolve } = Promise.withResolvers<void>();
 * let runs = 0;
 * scheduler.loop(0, () => {
 *   if (++runs === 3) resolve();
 *   return Promise.resolve(1);
 * });
 * await promise;
 * scheduler.stop();
 * console.assert(runs === 3 && scheduler.pending === 0);
 * ```
 *
 * @module
 */

/**
 * Owns the timers of a peer's background work. Tasks are async functions; a loop's
 * task resolves to the delay in ms before its next run (a heartbeat backs off by
 * returning a longer one). A task that throws is reported to `onError`; a loop then
 * runs again after its last delay.
 */
export class Scheduler {
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #onError: (err: unknown) => void;
  #stopped = false;

  constructor(onError: (err: unknown) => void) {
    this.#onError = onError;
  }

  /** Whether `stop()` was called: long tasks check it to end early. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Runs `task` once after `ms` (unless stopped by then). */
  later(ms: number, task: () => Promise<void> | void): void {
    if (this.#stopped) return;
    const t = setTimeout(async () => {
      this.#timers.delete(t);
      try {
        await task();
      } catch (err) {
        this.#onError(err);
      }
    }, ms);
    this.#timers.add(t);
  }

  /** Runs `task` after `firstMs`, then again after each delay it resolves to, until stopped. */
  loop(firstMs: number, task: () => Promise<number>): void {
    let delay = firstMs;
    const run = async () => {
      try {
        delay = await task();
      } catch (err) {
        this.#onError(err);
      }
      this.later(delay, run);
    };
    this.later(firstMs, run);
  }

  /** Clears every timer; later calls schedule nothing. Idempotent. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}
