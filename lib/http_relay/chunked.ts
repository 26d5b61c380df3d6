/**
 * Chunked transfer coding (RFC 9112 §7.1), sans-IO: a `ChunkedTracker` finds where
 * a chunked body ends in bytes that are relayed as they are, and `decodeChunked()`
 * decodes a whole small body read into memory.
 *
 * @module
 */
import { CR, HEX, HTAB, isFieldByte, LF, showByte, SP, TCHAR } from "./_syntax.ts";
import { HttpParseError } from "./errors.ts";
import { MAX_HEAD } from "./head.ts";

/** Longest chunk-size line, extensions and CRLF included, in bytes. */
const MAX_CHUNK_LINE = 4096;
/** Most hex digits of a chunk size: 15 already reach 2^60. */
const MAX_SIZE_DIGITS = 15;

// ChunkedTracker states.
const SIZE_START = 0; // first hex digit of a chunk size
const SIZE = 1; // more hex digits, or what follows them
const SIZE_BWS = 2; // whitespace after the size: only ';' may follow
const EXT = 3; // chunk extensions, up to CR
const SIZE_LF = 4; // the LF of a chunk-size line
const DATA = 5; // chunk data, skipped by count
const DATA_CR = 6; // the CR after chunk data
const DATA_LF = 7; // the LF after chunk data
const TRAILER_START = 8; // start of a trailer line, or the CR of the final empty line
const TRAILER_NAME = 9; // trailer field name, up to ':'
const TRAILER_VALUE = 10; // trailer field value, up to CR
const TRAILER_LF = 11; // the LF of a trailer line
const END_LF = 12; // the LF of the final empty line
const DONE = 13;

/**
 * Finds where a chunked body ends in a stream of raw bytes that is relayed as is,
 * never decoded into a new buffer. Feed it the bytes as they arrive; `push()`
 * returns how many bytes of this piece belong to the body: all of them, or fewer
 * when the body ended inside the piece (the rest belongs to the next message).
 * Once the body has ended (`done`), `push()` returns 0.
 *
 * It reads chunk-size lines (hex digits, optional whitespace and `;ext` chunk
 * extensions, CRLF; at most 4096 bytes a line), skips chunk data by count without
 * looking at it, checks the CRLF after each chunk's data, and after the last chunk
 * (size 0) reads trailer fields up to the empty line (at most `MAX_HEAD` bytes of
 * them). Work is O(n) in the bytes pushed and memory is constant, whatever the
 * chunk sizes, and any split of the input gives the same answer. Malformed input
 * (a size that is not hex, over 15 digits or over 2^53 - 1, a missing CRLF after
 * data, a bare CR or LF, a control character, an over-long line) throws
 * `HttpParseError(400, "bad_chunked")`; the tracker then throws the same error on
 * every later call. The caller maps it to another status for upstream bodies.
 */
export class ChunkedTracker {
  #state = SIZE_START;
  /** The chunk size being read, then the data bytes still to skip. */
  #size = 0;
  #digits = 0;
  /** Bytes of the current chunk-size line so far. */
  #line = 0;
  /** Bytes of the trailer section so far. */
  #trailer = 0;
  /** Bytes of the body consumed before the current piece, for messages. */
  #offset = 0;
  #error: HttpParseError | undefined;

  /** Whether the whole body, trailers and final CRLF included, has gone through `push()`. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /**
   * Takes the next bytes of the stream and returns how many of them belong to the
   * body (0 once `done`). Throws `HttpParseError(400, "bad_chunked")` on malformed
   * input, and again on every call after that.
   */
  push(bytes: Uint8Array): number {
    if (this.#error) throw this.#error;
    const n = bytes.length;
    let i = 0;
    while (i < n && this.#state !== DONE) {
      if (this.#state === DATA) {
        const k = Math.min(this.#size, n - i);
        i += k;
        this.#size -= k;
        if (this.#size === 0) this.#state = DATA_CR;
        continue;
      }
      const b = bytes[i];
      this.#step(b, i);
      i++;
    }
    this.#offset += i;
    return i;
  }

  /** Advances the state machine by one byte (any state but DATA and DONE). */
  #step(b: number, at: number): void {
    switch (this.#state) {
      case SIZE_START:
      case SIZE: {
        this.#lineByte(at);
        const d = HEX[b];
        if (d >= 0) {
          this.#size = this.#size * 16 + d;
          if (++this.#digits > MAX_SIZE_DIGITS) {
            this.#fail(`chunk size has over '${MAX_SIZE_DIGITS}' hex digits`, at);
          }
          if (this.#size > Number.MAX_SAFE_INTEGER) {
            this.#fail("chunk size is over 2^53 - 1", at);
          }
          this.#state = SIZE;
        } else if (this.#state === SIZE_START) {
          this.#fail(`chunk size starts with ${showByte(b)}, not a hex digit`, at);
        } else if (b === SP || b === HTAB) this.#state = SIZE_BWS;
        else if (b === 0x3b) this.#state = EXT;
        else if (b === CR) this.#state = SIZE_LF;
        else this.#fail(`chunk size is followed by ${showByte(b)}`, at);
        return;
      }
      case SIZE_BWS:
        this.#lineByte(at);
        if (b === 0x3b) this.#state = EXT;
        else if (b !== SP && b !== HTAB) {
          this.#fail(`whitespace after a chunk size is followed by ${showByte(b)}, not ';'`, at);
        }
        return;
      case EXT:
        this.#lineByte(at);
        if (b === CR) this.#state = SIZE_LF;
        else if (!isFieldByte(b)) this.#fail(`chunk extension has ${showByte(b)}`, at);
        return;
      case SIZE_LF:
        this.#lineByte(at);
        if (b !== LF) this.#fail(`chunk-size line has CR followed by ${showByte(b)}`, at);
        this.#line = 0;
        this.#digits = 0;
        this.#state = this.#size > 0 ? DATA : TRAILER_START;
        return;
      case DATA_CR:
        if (b !== CR) this.#fail(`chunk data is followed by ${showByte(b)}, not CRLF`, at);
        this.#state = DATA_LF;
        return;
      case DATA_LF:
        if (b !== LF) this.#fail(`chunk data is followed by CR then ${showByte(b)}`, at);
        this.#state = SIZE_START;
        return;
      case TRAILER_START:
        this.#trailerByte(at);
        if (b === CR) this.#state = END_LF;
        else if (TCHAR[b]) this.#state = TRAILER_NAME;
        else this.#fail(`trailer line starts with ${showByte(b)}`, at);
        return;
      case TRAILER_NAME:
        this.#trailerByte(at);
        if (b === 0x3a) this.#state = TRAILER_VALUE;
        else if (!TCHAR[b]) this.#fail(`trailer field name has ${showByte(b)}`, at);
        return;
      case TRAILER_VALUE:
        this.#trailerByte(at);
        if (b === CR) this.#state = TRAILER_LF;
        else if (!isFieldByte(b)) this.#fail(`trailer field value has ${showByte(b)}`, at);
        return;
      case TRAILER_LF:
        this.#trailerByte(at);
        if (b !== LF) this.#fail(`trailer line has CR followed by ${showByte(b)}`, at);
        this.#state = TRAILER_START;
        return;
      case END_LF:
        this.#trailerByte(at);
        if (b !== LF) this.#fail(`final empty line has CR followed by ${showByte(b)}`, at);
        this.#state = DONE;
        return;
    }
  }

  #lineByte(at: number): void {
    if (++this.#line > MAX_CHUNK_LINE) {
      this.#fail(`chunk-size line is over '${MAX_CHUNK_LINE}' bytes`, at);
    }
  }

  #trailerByte(at: number): void {
    if (++this.#trailer > MAX_HEAD) {
      this.#fail(`trailer section is over '${MAX_HEAD}' bytes`, at);
    }
  }

  #fail(message: string, at: number): never {
    this.#error = new HttpParseError(
      400,
      "bad_chunked",
      `Bad chunked body at byte '${this.#offset + at}': ${message}`,
    );
    throw this.#error;
  }
}

/**
 * Decodes a whole chunked body held in memory (a small answer read to its end):
 * the chunks' data joined, extensions and trailers dropped. Bytes after the body
 * are ignored. Throws `HttpParseError(400, "bad_chunked")` when the body is
 * malformed (as `ChunkedTracker` finds it) or ends before its last chunk.
 */
export function decodeChunked(bytes: Uint8Array): Uint8Array {
  const tracker = new ChunkedTracker();
  tracker.push(bytes);
  if (!tracker.done) {
    throw new HttpParseError(
      400,
      "bad_chunked",
      `Bad chunked body: it ends after '${bytes.length}' bytes, before its last chunk`,
    );
  }
  const parts: Uint8Array[] = [];
  let total = 0;
  for (let at = 0;;) {
    // The tracker has checked every size line: hex digits, then whitespace, `;` or CR.
    let size = 0;
    let i = at;
    for (; HEX[bytes[i]] >= 0; i++) size = size * 16 + HEX[bytes[i]];
    if (size === 0) break;
    const start = bytes.indexOf(LF, i) + 1;
    parts.push(bytes.subarray(start, start + size));
    total += size;
    at = start + size + 2;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
