/**
 * Rate limits per remote address: a token bucket each (`rate` tokens a second,
 * bursts of up to `burst`), kept for at most `maxAddresses` addresses (the least
 * recently seen go first). A caller over its rate is told the seconds to wait (an
 * HTTP server answers `429` with `Retry-After`); `firstRefusal` marks the first
 * refusal of a run, so that a flood can cost one activity record, not one per
 * request. Used by the tracker (requests), the peer's main HTTP server (requests)
 * and its chunk service (new connections).
 *
 * @module
 */

import { BoundedMap } from "./bounded_map.ts";
/** What `RequestRate.take()` decides. */
export type RateDecision =
  | { ok: true }
  | { ok: false; retryAfterSeconds: number; firstRefusal: boolean };

interface Bucket {
  tokens: number;
  at: number;
  refusing: boolean;
}

/** Token buckets by address. */
export class RequestRate {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: () => number;
  readonly #buckets: BoundedMap<string, Bucket>;

  /** `rate` 0 turns limiting off. */
  constructor(
    opts: { rate: number; burst?: number; maxAddresses?: number; clock?: () => number },
  ) {
    this.#rate = opts.rate;
    this.#burst = opts.burst ?? Math.max(1, opts.rate * 2);
    // The least recently seen addresses go first past the cap.
    this.#buckets = new BoundedMap(opts.maxAddresses ?? 10_000);
    this.#clock = opts.clock ?? Date.now;
  }

  /** Takes one request's token for `address`. */
  take(address: string): RateDecision {
    if (this.#rate <= 0) return { ok: true };
    const now = this.#clock();
    let b = this.#buckets.get(address);
    if (b) {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#rate / 1000);
      b.at = now;
    } else {
      b = { tokens: this.#burst, at: now, refusing: false };
    }
    this.#buckets.set(address, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      b.refusing = false;
      return { ok: true };
    }
    const firstRefusal = !b.refusing;
    b.refusing = true;
    return {
      ok: false,
      retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.#rate)),
      firstRefusal,
    };
  }
}
