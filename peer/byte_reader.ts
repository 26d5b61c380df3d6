/**
 * Reads a byte stream chunk by chunk for a frame decoder. When the stream lets it
 * read into its own buffer (a byte stream, such as a TCP connection's), the buffer
 * starts small, so idle and hostile connections cost little, is reused for every
 * read (the decoder copies what it keeps), and doubles each time a read fills it, up
 * to a size where one read can hold a whole 1 MiB chunk frame. Other streams (a
 * `TransformStream`, say) are read as their chunks come.
 *
 * ```ts
 * import { ByteReader } from "./byte_reader.ts";
 *
 * const reader = new ByteReader(ReadableStream.from([new Uint8Array([1, 2])]));
 * console.assert((await reader.read())?.length === 2);
 * console.assert((await reader.read()) === undefined);
 * ```
 *
 * @module
 */

/** First size of the read buffer. */
export const MIN_READ_BUFFER = 64 * 1024;
/** Size past which the read buffer no longer grows. */
export const MAX_READ_BUFFER = 2 * 1024 * 1024;

/** Reads a byte stream into one reused, growing buffer where it can. */
export class ByteReader {
  readonly #reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
  #buffer: Uint8Array | undefined;

  constructor(readable: ReadableStream<Uint8Array>) {
    try {
      this.#reader = readable.getReader({ mode: "byob" });
      this.#buffer = new Uint8Array(MIN_READ_BUFFER);
    } catch {
      this.#reader = readable.getReader();
    }
  }

  /**
   * The next bytes, or `undefined` once the stream has ended. The array is valid
   * until the next `read()` (its memory is read into again): copy what must be kept.
   */
  async read(): Promise<Uint8Array | undefined> {
    if (!this.#buffer) {
      const result = await (this.#reader as ReadableStreamDefaultReader<Uint8Array>).read();
      return result.done ? undefined : result.value;
    }
    const result = await (this.#reader as ReadableStreamBYOBReader).read(this.#buffer);
    // The read transferred our buffer: read into the same memory again, or into a
    // bigger buffer when this read filled it.
    const value = result.value;
    if (value) {
      this.#buffer = value.length === value.buffer.byteLength && value.length < MAX_READ_BUFFER
        ? new Uint8Array(value.length * 2)
        : new Uint8Array(value.buffer);
    }
    return result.done ? undefined : value;
  }

  /** Cancels the stream (ending a pending `read()`); never rejects. */
  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason).catch(() => {});
  }
}
