/**
 * Reads a byte stream chunk by chunk for a frame decoder. When the stream lets it
 * read into its own buffer (a byte stream, such as a TCP connection's), the buffer
 * starts small, so idle and hostile connections cost little, is reused for every
 * read (the decoder copies what it keeps), and doubles each time a read fills it, up
 * to a size where one read can hold a whole 1 MiB chunk frame. A direct reader's
 * buffer stays at 64 KiB: `readInto()` reads the rest of a frame straight into the
 * frame's own memory (`FrameDecoder.directTarget`), without a copy. Other streams (a
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
  readonly #reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array> | undefined;
  readonly #readInto: ((p: Uint8Array) => Promise<number | null>) | undefined;
  #buffer: Uint8Array | undefined;
  #cancelled = false;

  /**
   * Reads `readable`; or, given `readInto` (a `Deno.Conn`'s `read`), reads with it
   * and leaves the stream alone: one promise per read instead of a stream request,
   * about 0.35 CPU-s less per GiB received over Deno's TLS (1.35–1.55 against
   * 1.80–1.86 measured), whose reads bring one 16 KiB record each.
   */
  constructor(
    readable: ReadableStream<Uint8Array>,
    readInto?: (p: Uint8Array) => Promise<number | null>,
  ) {
    if (readInto) {
      this.#readInto = readInto;
      this.#buffer = new Uint8Array(MIN_READ_BUFFER);
      return;
    }
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
    if (this.#readInto) return await this.#readDirect(this.#buffer!);
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

  /** Whether `readInto()` can be used: the reader was built with `readInto`. */
  get direct(): boolean {
    return this.#readInto !== undefined;
  }

  /**
   * Reads straight into `target` (at most its length), for a caller that knows where
   * the next bytes belong (`FrameDecoder.directTarget`): the count read, or
   * `undefined` once the stream has ended. Only when `direct`.
   */
  async readInto(target: Uint8Array): Promise<number | undefined> {
    if (!this.#readInto) throw new TypeError("Cannot readInto(): this reader reads a stream");
    if (this.#cancelled) return undefined;
    let n: number | null;
    try {
      n = await this.#readInto(target);
    } catch (err) {
      // A read cut short by cancel() (the connection closed under it) is an end.
      if (this.#cancelled) return undefined;
      throw err;
    }
    return n === null || this.#cancelled ? undefined : n;
  }

  async #readDirect(buffer: Uint8Array): Promise<Uint8Array | undefined> {
    // The buffer does not grow: a frame's bulk is read straight into its own buffer
    // (`readInto()`); a bigger one would take whole chunks of a backlog and copy them.
    const n = await this.readInto(buffer);
    return n === undefined ? undefined : buffer.subarray(0, n);
  }

  /**
   * Cancels the stream (ending a pending `read()`); never rejects. With a direct
   * reader, the owner closes the connection, which ends the pending read.
   */
  cancel(reason?: unknown): Promise<void> {
    this.#cancelled = true;
    return this.#reader?.cancel(reason).catch(() => {}) ?? Promise.resolve();
  }
}
