/**
 * A socket's receive buffer (`Inbox`): the bytes a socket has sent and not yet
 * been consumed, in one buffer that starts at 16 KiB and grows for long heads and
 * streaming bodies up to 129 KiB, with room kept in front for an answer head to
 * go out in one write with the body bytes already read. Also `readHead()`, which
 * reads one message head from an inbox, and the write and close helpers every
 * part of the relay uses.
 *
 * @module
 */
import { headEnd, MAX_HEAD } from "./head.ts";
import type { Deadline } from "./deadlines.ts";

/** Bytes read from a socket per call, and the most a buffer holds besides a head. */
export const READ_SIZE = 64 * 1024;
/** Room kept before what a socket sends, for an answer head to go out with it. */
export const HEADROOM = 1024;
/** A socket's buffer at first: enough for most heads and small bodies. */
export const INITIAL_BUFFER = 16 * 1024;
/** A socket's buffer at most: the headroom, a whole head and one read. */
export const MAX_BUFFER = HEADROOM + MAX_HEAD + READ_SIZE;

/**
 * The bytes a socket has sent and not yet been consumed, in one buffer. At most
 * one read is pending at a time; a pending read appends after the unconsumed
 * bytes, so consuming while it runs is safe.
 */
export class Inbox {
  buf = new Uint8Array(INITIAL_BUFFER);
  start = HEADROOM;
  end = HEADROOM;
  /** The socket has ended (or failed, or was closed here). */
  eof = false;
  /** Called once when the socket ends (set while an answer is awaited). */
  onEnd: (() => void) | undefined;
  #pending: Promise<void> | undefined;
  /** The last read filled all the room it had: the socket has more (a body). */
  #filled = false;
  /**
   * `sendLimit`: how long a write to this socket may wait for the other side to
   * read (see `send()`); without it, writes wait as long as it takes.
   */
  constructor(readonly conn: Deno.Conn, readonly sendLimit?: SendLimit) {}

  /** Writes all of `bytes` to the socket, within `sendLimit` when there is one. */
  send(bytes: Uint8Array): Promise<void> {
    return writeAll(this.conn, bytes, this.sendLimit);
  }

  /** How many bytes are unconsumed. */
  get length(): number {
    return this.end - this.start;
  }

  /** The unconsumed bytes (a view: valid until the next read). */
  bytes(max = Infinity): Uint8Array {
    return this.buf.subarray(this.start, this.start + Math.min(max, this.length));
  }

  /** Drops the first `n` unconsumed bytes (they were sent on, or parsed). */
  consume(n: number): void {
    this.start += n;
    if (this.start === this.end && !this.#pending) this.start = this.end = HEADROOM;
  }

  /**
   * Puts `bytes` before the unconsumed ones, where there is room (what was consumed,
   * or the headroom): so that both go out in one write. False when there is none.
   */
  prepend(bytes: Uint8Array): boolean {
    if (this.start < bytes.byteLength) return false;
    this.start -= bytes.byteLength;
    this.buf.set(bytes, this.start);
    return true;
  }

  /** Reads more bytes; false once the socket has ended and nothing new came. */
  async fill(): Promise<boolean> {
    const before = this.end;
    this.#pending ??= this.#read();
    await this.#pending;
    return this.end > before || !this.eof;
  }

  /** Starts a read, if none is pending, to notice the socket ending. */
  watch(): void {
    if (!this.eof && this.end < this.buf.length) this.#pending ??= this.#read();
  }

  async #read(): Promise<void> {
    try {
      if (this.eof) return;
      if (this.start > HEADROOM && this.buf.length - this.end < READ_SIZE) {
        this.buf.copyWithin(HEADROOM, this.start, this.end);
        this.end -= this.start - HEADROOM;
        this.start = HEADROOM;
      }
      // Grows for a body that keeps coming, or a head that does not fit.
      if (
        this.buf.length < MAX_BUFFER &&
        (this.#filled || this.buf.length - this.end < this.buf.length / 4)
      ) {
        const grown = new Uint8Array(Math.min(MAX_BUFFER, this.buf.length * 4));
        grown.set(this.buf.subarray(0, this.end));
        this.buf = grown;
      }
      if (this.end === this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      // Callers consume before they read again; a full buffer ends the socket.
      if (this.end === this.buf.length) throw new RangeError("Socket buffer is full");
      const room = this.buf.length - this.end;
      const n = await this.conn.read(this.buf.subarray(this.end));
      if (n === null) this.#end();
      else this.end += n;
      this.#filled = n === room;
    } catch {
      this.#end();
    } finally {
      this.#pending = undefined;
    }
  }

  #end() {
    this.eof = true;
    this.onEnd?.();
  }
}

/**
 * A limit on writes to a socket whose reader may stall: each write must make
 * progress within `ms`, else `deadline` fires (and closes the socket, which fails
 * the write).
 */
export interface SendLimit {
  readonly deadline: Deadline;
  readonly ms: number;
}

/** Writes all of `bytes`; with `limit`, each part written must go within `limit.ms`. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
  limit?: SendLimit,
): Promise<void> {
  let off = 0;
  if (!limit) {
    while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
    return;
  }
  try {
    while (off < bytes.byteLength) {
      limit.deadline.arm(limit.ms);
      off += await conn.write(bytes.subarray(off));
    }
  } finally {
    limit.deadline.disarm();
  }
}

/** Closes `conn`, if it is not closed yet. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/**
 * Reads one message head with `parse`; undefined when the socket ends first, and
 * `tooLarge()` thrown for a head over {@linkcode MAX_HEAD}.
 */
export async function readHead<T>(
  inbox: Inbox,
  parse: (bytes: Uint8Array) => T,
  tooLarge: () => Error,
): Promise<T | undefined> {
  let scanned = 0;
  for (;;) {
    const end = headEnd(inbox.bytes(), inbox.length, Math.max(0, scanned - 3));
    if (end >= 0) {
      const head = parse(inbox.bytes(end));
      inbox.consume(end);
      return head;
    }
    if (inbox.length >= MAX_HEAD) throw tooLarge();
    scanned = inbox.length;
    if (!await inbox.fill()) return undefined;
  }
}
