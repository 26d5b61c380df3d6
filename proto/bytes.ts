/**
 * Byte helpers shared by the codec, the peer and tests.
 *
 * @module
 */

/** The bytes of `parts` one after the other, in a new array (the part itself when alone). */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Reusable byte buffers of one size, for large frames that come and go at a high rate
 * (chunk answers during a download). V8 frees an `ArrayBuffer` only when its garbage
 * collector runs, and for memory outside its heap that happens after tens of MiB
 * have piled up: at hundreds of MiB/s, a fresh 1 MiB buffer per chunk keeps about
 * 60 MiB of dead buffers resident. A buffer taken here comes back with `release()`
 * once its last user is done with it; one that is never released is simply
 * collected like any other.
 *
 * ```ts
 * const pool = new BufferPool(1 << 20);
 * const frame = pool.take(1000);   // a view of the first 1000 bytes of a pooled buffer
 * pool.release(frame.subarray(7)); // any view of it gives the buffer back, once
 * ```
 */
export class BufferPool {
  /** Bytes of every buffer; `take()` serves lengths up to this. */
  readonly size: number;
  /** Released buffers kept for reuse at most; more are left to the collector. */
  readonly maxIdle: number;
  readonly #idle: ArrayBufferLike[] = [];
  readonly #lent = new WeakSet<ArrayBufferLike>();

  /** Throws `RangeError` for a size or maxIdle that is not a positive integer. */
  constructor(size: number, maxIdle = 16) {
    for (const [name, v] of [["size", size], ["maxIdle", maxIdle]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new RangeError(`Cannot create BufferPool: ${name} '${v}' is not a positive integer`);
      }
    }
    this.size = size;
    this.maxIdle = maxIdle;
  }

  /** Buffers waiting to be taken again. */
  get idle(): number {
    return this.#idle.length;
  }

  /**
   * A view of the first `length` bytes of a pooled buffer (a reused one when any is
   * idle), holding whatever its last user left there. `RangeError` when `length`
   * is not an integer in 0..size.
   */
  take(length: number): Uint8Array {
    if (!Number.isInteger(length) || length < 0 || length > this.size) {
      throw new RangeError(
        `Cannot take '${length}' bytes from a pool of '${this.size}'-byte buffers`,
      );
    }
    const buf = this.#idle.pop() ?? new ArrayBuffer(this.size);
    this.#lent.add(buf);
    return new Uint8Array(buf, 0, length);
  }

  /**
   * Gives back the buffer under `bytes`, a view of one that `take()` returned. Call it
   * once, after the last use of every view of that buffer: whoever takes it next
   * overwrites it. Returns whether the buffer was taken back; views of other memory,
   * and a buffer already given back, are ignored.
   */
  release(bytes: Uint8Array): boolean {
    const buf = bytes.buffer;
    if (!this.#lent.has(buf)) return false;
    this.#lent.delete(buf);
    if (this.#idle.length >= this.maxIdle) return false;
    this.#idle.push(buf);
    return true;
  }
}
