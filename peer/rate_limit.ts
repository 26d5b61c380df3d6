/**
 * A byte-rate limiter for serving chunks (`p2p peer --max-upload-rate`): each
 * `take(n)` waits until the line would have carried the earlier bytes at the given
 * rate, so the long-run rate never exceeds it. Waits are computed, never polled.
 *
 * @module
 */

/** Limits a flow of bytes to `bytesPerSecond`. */
export class RateLimiter {
  readonly bytesPerSecond: number;
  /** When the bytes taken so far will have gone through, in ms (performance clock). */
  #free = 0;

  constructor(bytesPerSecond: number) {
    if (!(bytesPerSecond > 0)) {
      throw new RangeError(
        `Rate '${bytesPerSecond}' must be a positive number of bytes per second`,
      );
    }
    this.bytesPerSecond = bytesPerSecond;
  }

  /** Resolves when `bytes` may be sent; rejects if `signal` aborts first. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const start = Math.max(now, this.#free);
    const cost = (bytes / this.bytesPerSecond) * 1000;
    this.#free = start + cost;
    const wait = start - now;
    if (wait <= 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, wait);
      const onAbort = () => {
        clearTimeout(t);
        // Bytes that will never be sent give their share of the line back.
        this.#free -= cost;
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
