/**
 * Time limits for many sockets on one interval timer: a `Deadline` is armed,
 * disarmed and armed again per request at the cost of a map write, instead of a
 * timer of its own for each limit. The timer runs only while a deadline is armed.
 *
 * @example
 * ```ts
 * import { Deadlines } from "./deadlines.ts";
 *
 * const deadlines = new Deadlines(5);
 * const fired = Promise.withResolvers<void>();
 * deadlines.make(() => fired.resolve()).arm(10);
 * await fired.promise;
 * deadlines.stop();
 * ```
 *
 * @module
 */

/** A time limit from {@linkcode Deadlines}: armed, disarmed, armed again. */
export interface Deadline {
  /** Fires in `ms` (to the nearest tick), replacing any earlier time. */
  arm(ms: number): void;
  /** Will not fire (until armed again). */
  disarm(): void;
}

/**
 * Time limits checked by one interval timer while any is armed, to the nearest
 * `tickMs`: per request, this is cheaper than a timer of its own for each limit.
 */
export class Deadlines {
  #armed = new Map<() => void, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  constructor(readonly tickMs: number) {}

  /** A deadline that calls `fire` once it passes (and is then disarmed). */
  make(fire: () => void): Deadline {
    return {
      arm: (ms) => {
        if (this.#stopped) return;
        this.#armed.set(fire, performance.now() + ms);
        this.#timer ??= setInterval(() => this.#tick(), this.tickMs);
      },
      disarm: () => {
        this.#armed.delete(fire);
      },
    };
  }

  /** Disarms every deadline and ends the timer; later arms are ignored. */
  stop(): void {
    this.#stopped = true;
    this.#armed.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    for (const [fire, at] of this.#armed) {
      if (at > now) continue;
      this.#armed.delete(fire);
      fire();
    }
    if (this.#armed.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
