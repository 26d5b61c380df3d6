/**
 * The peer wire codec, sans-IO: `encodePreamble()` and `encodeFrame()` turn values
 * into bytes, and a `FrameDecoder` turns received bytes back into messages. Nothing
 * here touches a socket; the connection loop feeds `push()` and dispatches.
 *
 * Each side of a TCP connection first sends an 8-byte preamble, then frames. All
 * integers are unsigned big-endian.
 *
 * ```text
 * preamble   magic       4 bytes  0x50 0x32 0x50 0x21 ("P2P!")
 *            version     u16      PROTOCOL_VERSION (2: the link handshake of link_auth.ts)
 *            flags       u16      bit 0: plaintext link asked (dialer's clear-text preamble);
 *                                 other bits reserved, sent as 0, ignored on receipt
 *
 * frame      length      u32      bytes that FOLLOW this field (excludes its own 4)
 *            type        u8       MessageType code (messages.ts)
 *            requestId   u32      chosen by the requester, echoed by the answer
 *            headerLen   u16      bytes of header (≤ MAX_HEADER)
 *            header      headerLen bytes of UTF-8 JSON, an object
 *            body        the rest of the frame: raw bytes, possibly none (≤ MAX_BODY)
 * ```
 *
 * So `length = 7 + headerLen + bodyLength`, at least 7 and at most
 * `MAX_FRAME_LENGTH = 7 + MAX_HEADER + MAX_BODY`. Chunk bytes travel raw in the body.
 *
 * The decoder reads every length as unsigned and checks it against its limit before
 * it buffers anything for it; it holds at most one partial frame, and grows that
 * buffer only as bytes arrive, so a peer that declares a large frame and sends
 * nothing costs little. Bad input throws `FrameTooLargeError`, `VersionMismatchError`
 * or a `ProtocolError` whose `code` names the fault:
 *
 * | code                  | fault                                                   |
 * | --------------------- | ------------------------------------------------------- |
 * | `bad_magic`           | the connection does not start with "P2P!"               |
 * | `version_mismatch`    | the preamble's version is not ours                      |
 * | `frame_too_large`     | `length` is over the decoder's `maxFrameLength`         |
 * | `bad_length`          | `length` is under 7                                     |
 * | `bad_header_length`   | `headerLen` does not fit in `length`                    |
 * | `body_too_large`      | the body would be over `MAX_BODY`                       |
 * | `unknown_type`        | `type` is not a known `MessageType` code                |
 * | `bad_header_encoding` | the header is not UTF-8                                 |
 * | `bad_header_json`     | the header is not JSON                                  |
 * | `bad_header`          | the header fails its zod schema (`messages.ts`)         |
 * | `bad_body`            | the body does not fit the header (HAVE, MANIFEST)       |
 * | `truncated`           | `end()` was called inside the preamble or a frame       |
 * | `over_budget`         | a partial frame would overrun the shared `FrameBudget`  |
 *
 * (A `ProtocolError` `internal` would mean a bug in this file: any other exception is
 * wrapped in one, so callers only ever see `ProtocolError`s.) After it throws, a
 * decoder throws the same error on every later call: the caller closes that connection. Frames that came before the bad bytes in the same `push()`
 * are dropped with it.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, encodePreamble, FrameDecoder } from "./frame.ts";
 *
 * const decoder = new FrameDecoder();
 * const bytes = [encodePreamble(), encodeFrame({ type: "PING", requestId: 7, header: { ts: 1 } })];
 * const messages = bytes.flatMap((b) => decoder.push(b));
 * assert.equal(decoder.preamble?.version, 2);
 * assert.deepEqual(messages, [
 *   { type: "PING", requestId: 7, header: { ts: 1 }, body: new Uint8Array(0) },
 * ]);
 * ```
 *
 * @module
 */
import { type BufferPool, concatBytes } from "./bytes.ts";
import { FrameTooLargeError, ProtocolError, VersionMismatchError } from "./errors.ts";
import {
  MAX_BODY,
  MAX_HEADER,
  type Message,
  Message as MessageSchema,
  type MessageInit,
  MessageSchemas,
  MessageType,
  type MessageTypeName,
} from "./messages.ts";

/** The protocol version this build speaks, sent in the preamble. */
export const PROTOCOL_VERSION = 2;
/** The first 4 bytes of every connection: "P2P!". (The codec keeps its own copy.) */
export const MAGIC: Uint8Array = Uint8Array.of(0x50, 0x32, 0x50, 0x21);
const MAGIC_BYTES = MAGIC.slice();
/** Bytes of the preamble: magic, u16 version, u16 flags. */
export const PREAMBLE_LENGTH = 8;
/** Bytes of a frame's fixed fields after the length: u8 type, u32 requestId, u16 headerLen. */
export const FIXED_LENGTH = 7;
/** Largest frame `length` (excluding the length field itself): 7 + MAX_HEADER + MAX_BODY. */
export const MAX_FRAME_LENGTH = FIXED_LENGTH + MAX_HEADER + MAX_BODY;

/** Smallest buffer the decoder starts a partial frame with; it doubles from there. */
const MIN_BUFFER = 64 * 1024;
const TYPE_NAMES: (MessageTypeName | undefined)[] = [];
for (const [name, code] of Object.entries(MessageType)) {
  TYPE_NAMES[code] = name as MessageTypeName;
}
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A bound on the bytes that partly received frames hold, shared by the decoders of
 * many connections (a peer's inbound connections): each decoder takes what its
 * partial frame grows by, and gives it all back when the frame completes or the
 * decoder is released. A decoder that cannot take what it needs throws
 * `ProtocolError` `over_budget`: that connection closes, the others go on.
 */
export class FrameBudget {
  /** Most bytes held at once. */
  readonly limit: number;
  #used = 0;

  /** A budget of `limit` bytes; `RangeError` when it is not a positive integer. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot create FrameBudget: limit '${limit}' is not a positive integer`);
    }
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Takes `n` bytes when they fit under the limit; says whether it did. */
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false;
    this.#used += n;
    return true;
  }

  /** Gives back `n` bytes taken before. */
  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** What the other side's preamble said. */
export interface Preamble {
  /** Its protocol version (always `PROTOCOL_VERSION`: another one throws). */
  version: number;
  /** Its flags word; reserved, so any bits set by a newer peer are only reported. */
  flags: number;
}

/** Options of a `FrameDecoder`. */
export interface FrameDecoderOptions {
  /** Whether the stream starts with the 8-byte preamble (default true). */
  expectPreamble?: boolean;
  /** Largest frame `length` accepted (default and maximum `MAX_FRAME_LENGTH`). */
  maxFrameLength?: number;
  /**
   * Where large frames are read into: a frame of `MIN_BUFFER` (64 KiB) to `pool.size`
   * bytes gets a whole pooled buffer as soon as its length is known, instead of one
   * that doubles as bytes arrive, and its message's body is a view of that buffer,
   * which the receiver may `release()`. Meant for connections this side opened: a
   * stalled frame then holds `pool.size` bytes whatever arrived.
   */
  pool?: BufferPool;
  /** Shared bound on the bytes of partial frames (not pooled ones), see `FrameBudget`. */
  budget?: FrameBudget;
}

/**
 * The 8-byte preamble that starts each side of a connection: magic, the given
 * protocol version (default `PROTOCOL_VERSION`) and flags (default 0; bit 0 is a
 * dialer's request for a plaintext loopback link, see `peer/link_tls.ts`). Throws
 * `RangeError` when `version` or `flags` is not a u16.
 */
export function encodePreamble(version: number = PROTOCOL_VERSION, flags = 0): Uint8Array {
  if (!Number.isInteger(version) || version < 0 || version > 0xffff) {
    throw new RangeError(`Cannot encode preamble: version '${version}' is not a u16`);
  }
  if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff) {
    throw new RangeError(`Cannot encode preamble: flags '${flags}' is not a u16`);
  }
  const out = new Uint8Array(PREAMBLE_LENGTH);
  out.set(MAGIC_BYTES, 0);
  const view = new DataView(out.buffer);
  view.setUint16(4, version);
  view.setUint16(6, flags);
  return out;
}

/**
 * One message as a complete frame, length field included, in a fresh buffer. The
 * message is validated against its schema first, so only well-formed frames leave:
 * throws `TypeError` naming the first problems when it is not a valid message, and
 * `RangeError` when its header JSON is over `MAX_HEADER` bytes or its body over
 * `MAX_BODY`. A left-out body is empty.
 */
export function encodeFrame(msg: MessageInit): Uint8Array {
  const [head, body] = encodeFrameParts(msg);
  return body.length === 0 ? head : concatBytes(head, body);
}

/**
 * `encodeFrame()` in the two parts that go on the wire one after the other: the
 * length field, fixed fields and header in a fresh buffer, then the message's body
 * itself, not copied, so a 1 MiB chunk is sent without copying it first. Same checks
 * and errors as `encodeFrame()`.
 */
export function encodeFrameParts(msg: MessageInit): [head: Uint8Array, body: Uint8Array] {
  const parsed = MessageSchema.safeParse(msg);
  if (!parsed.success) {
    const type = typeof msg === "object" && msg !== null ? String(msg.type) : String(msg);
    throw new TypeError(`Cannot encode '${type}' message: ${summarize(parsed.error)}`, {
      cause: parsed.error,
    });
  }
  const { type, requestId, header, body } = parsed.data;
  const headerBytes = utf8.encode(JSON.stringify(header));
  if (headerBytes.length > MAX_HEADER) {
    throw new RangeError(
      `Cannot encode '${type}' message: header of '${headerBytes.length}' bytes is over the limit of '${MAX_HEADER}'`,
    );
  }
  if (body.length > MAX_BODY) {
    throw new RangeError(
      `Cannot encode '${type}' message: body of '${body.length}' bytes is over the limit of '${MAX_BODY}'`,
    );
  }
  const length = FIXED_LENGTH + headerBytes.length + body.length;
  const head = new Uint8Array(4 + FIXED_LENGTH + headerBytes.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, length);
  view.setUint8(4, MessageType[type]);
  view.setUint32(5, requestId);
  view.setUint16(9, headerBytes.length);
  head.set(headerBytes, 11);
  return [head, body];
}

/**
 * Incremental decoder of one direction of a connection: `push()` takes bytes as they
 * arrive, in pieces of any size, and returns the messages completed so far, each
 * validated against its schema. It first expects the preamble (unless built with
 * `expectPreamble: false`) and exposes it as `preamble`. It throws the typed errors
 * listed in the module docs and nothing else, holds at most one partial frame of at
 * most `maxFrameLength` bytes, and never returns a body that aliases the bytes
 * pushed, so the caller may reuse its read buffer.
 */
export class FrameDecoder {
  #maxFrameLength: number;
  #preamble: Preamble | undefined;
  #needPreamble: boolean;
  /** The preamble or a length field, while incomplete. */
  readonly #head = new Uint8Array(PREAMBLE_LENGTH);
  #headFill = 0;
  /** Declared length of the frame being read; -1 while reading a length field. */
  #frameLength = -1;
  /** The frame being read (after its length field); grows up to `#frameLength`. */
  #frame: Uint8Array = new Uint8Array(0);
  #frameFill = 0;
  #error: ProtocolError | undefined;
  readonly #pool: BufferPool | undefined;
  readonly #budget: FrameBudget | undefined;
  /** Bytes of `#budget` the partial frame holds. */
  #held = 0;

  /** A decoder for one connection; throws `RangeError` for a `maxFrameLength` out of range. */
  constructor(options: FrameDecoderOptions = {}) {
    const max = options.maxFrameLength ?? MAX_FRAME_LENGTH;
    this.#maxFrameLength = checkMax(max);
    this.#needPreamble = options.expectPreamble ?? true;
    this.#pool = options.pool;
    this.#budget = options.budget;
  }

  /**
   * Drops the partial frame and gives its bytes back to the budget (idempotent): what
   * a connection calls when it ends. The decoder is spent afterwards.
   */
  release(): void {
    this.#budget?.give(this.#held);
    this.#held = 0;
    this.#frame = new Uint8Array(0);
    this.#frameFill = 0;
    this.#error ??= new ProtocolError("released", "Frame decoder was released");
  }

  /** Largest frame `length` this decoder accepts. */
  get maxFrameLength(): number {
    return this.#maxFrameLength;
  }

  /**
   * Changes the limit for the frames whose length is read from now on (a connection
   * raises it once the other side is authenticated); `RangeError` when out of range.
   */
  set maxFrameLength(max: number) {
    this.#maxFrameLength = checkMax(max);
  }

  /** The other side's preamble once received; `undefined` before (or when not expected). */
  get preamble(): Preamble | undefined {
    return this.#preamble;
  }

  /** Bytes held of an incomplete preamble or frame (0 on a message boundary). */
  get buffered(): number {
    return this.#headFill + this.#frameFill + (this.#frameLength >= 0 ? 4 : 0);
  }

  /**
   * Adds received bytes and returns the messages they completed, in order (often
   * none). Throws `FrameTooLargeError`, `VersionMismatchError` or `ProtocolError`
   * on bad input; after that the decoder is spent and throws the same error again.
   */
  push(chunk: Uint8Array): Message[] {
    if (this.#error) throw this.#error;
    const out: Message[] = [];
    try {
      let off = 0;
      while (off < chunk.length) {
        if (this.#needPreamble) off = this.#readPreamble(chunk, off);
        else if (this.#frameLength < 0) off = this.#readLength(chunk, off);
        else {
          off = this.#readFrame(chunk, off);
          if (this.#frameFill === this.#frameLength) out.push(this.#complete());
        }
      }
    } catch (e) {
      this.#fail(e);
    }
    return out;
  }

  /**
   * Where the rest of the frame being read can be read straight into, saving the
   * copy `push()` makes: the unfilled part of a frame whose buffer already has its
   * declared length (a pooled one) and whose fixed fields were checked; `undefined`
   * otherwise (read elsewhere and `push()`). After reading `n` bytes into it, call
   * `filled(n)` before anything else.
   */
  get directTarget(): Uint8Array | undefined {
    if (this.#inPlaceLeft() < 0) return undefined;
    return this.#frame.subarray(this.#frameFill, this.#frameLength);
  }

  /** Bytes of the frame under way that may be read in place; -1 when none may. */
  #inPlaceLeft(): number {
    if (this.#error || this.#frameLength < 0 || this.#frameFill < FIXED_LENGTH) return -1;
    if (this.#frame.length < this.#frameLength) return -1;
    return this.#frameLength - this.#frameFill;
  }

  /**
   * Counts `n` bytes read into `directTarget` and returns the message they completed,
   * if they did. Throws `RangeError` for an `n` that does not fit there, and the
   * errors of `push()` for a bad frame.
   */
  filled(n: number): Message[] {
    if (this.#error) throw this.#error;
    // What directTarget offered, without making the view again (this runs per read).
    const left = this.#inPlaceLeft();
    if (!Number.isInteger(n) || n < 0 || n > left) {
      throw new RangeError(`Cannot count '${n}' bytes read: ${Math.max(left, 0)} were expected`);
    }
    this.#frameFill += n;
    if (this.#frameFill < this.#frameLength) return [];
    try {
      return [this.#complete()];
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Parses the frame just completed and gets ready for the next one. */
  #complete(): Message {
    const frame = this.#frame;
    this.#frame = new Uint8Array(0);
    this.#budget?.give(this.#held);
    this.#held = 0;
    this.#frameFill = 0;
    this.#frameLength = -1;
    return parseFrame(frame);
  }

  /** Spends the decoder on `e` and throws it (as a `ProtocolError`). */
  #fail(e: unknown): never {
    // Only our own errors can reach here; anything else would be a bug in this file.
    this.#error = e instanceof ProtocolError
      ? e
      : new ProtocolError("internal", `Frame decoder failed: ${String(e)}`, { cause: e });
    throw this.#error;
  }

  /**
   * Tells the decoder the stream has ended. Throws `ProtocolError` `truncated` when
   * it ended inside the preamble or a frame (or the decoder's earlier error);
   * an end on a message boundary, or before any byte, is fine.
   */
  end(): void {
    if (this.#error) throw this.#error;
    if (this.buffered > 0) {
      const where = this.#needPreamble ? "the preamble" : "a frame";
      this.#error = new ProtocolError(
        "truncated",
        `Connection ended inside ${where}: '${this.buffered}' bytes were left over`,
      );
      throw this.#error;
    }
  }

  #readPreamble(chunk: Uint8Array, off: number): number {
    const n = Math.min(PREAMBLE_LENGTH - this.#headFill, chunk.length - off);
    this.#head.set(chunk.subarray(off, off + n), this.#headFill);
    const from = this.#headFill;
    this.#headFill += n;
    // Check the magic byte by byte, so a client of another protocol is turned away
    // before it has sent a whole preamble.
    for (let i = from; i < Math.min(this.#headFill, MAGIC_BYTES.length); i++) {
      if (this.#head[i] !== MAGIC_BYTES[i]) {
        const got = [...this.#head.subarray(0, i + 1)]
          .map((b) => b.toString(16).padStart(2, "0")).join(" ");
        throw new ProtocolError(
          "bad_magic",
          `Connection does not start with the p2p magic '50 32 50 21': got '${got}'`,
        );
      }
    }
    if (this.#headFill === PREAMBLE_LENGTH) {
      const view = new DataView(this.#head.buffer);
      const version = view.getUint16(4);
      if (version !== PROTOCOL_VERSION) throw new VersionMismatchError(version, PROTOCOL_VERSION);
      this.#preamble = { version, flags: view.getUint16(6) };
      this.#needPreamble = false;
      this.#headFill = 0;
    }
    return off + n;
  }

  #readLength(chunk: Uint8Array, off: number): number {
    const n = Math.min(4 - this.#headFill, chunk.length - off);
    this.#head.set(chunk.subarray(off, off + n), this.#headFill);
    this.#headFill += n;
    if (this.#headFill === 4) {
      const length = new DataView(this.#head.buffer).getUint32(0);
      if (length > this.maxFrameLength) {
        throw new FrameTooLargeError(length, this.maxFrameLength);
      }
      if (length < FIXED_LENGTH) {
        throw new ProtocolError(
          "bad_length",
          `Frame length '${length}' is under the '${FIXED_LENGTH}' bytes of its fixed fields`,
        );
      }
      this.#frameLength = length;
      this.#headFill = 0;
      if (this.#pool && length >= MIN_BUFFER && length <= this.#pool.size) {
        this.#frame = this.#pool.take(length);
      }
    }
    return off + n;
  }

  #readFrame(chunk: Uint8Array, off: number): number {
    const n = Math.min(this.#frameLength - this.#frameFill, chunk.length - off);
    const need = this.#frameFill + n;
    if (need > this.#frame.length) {
      // Grow by doubling, never past the declared length: memory follows the bytes
      // that actually arrived, not what the peer claims it will send.
      const size = Math.min(this.#frameLength, Math.max(need, 2 * this.#frame.length, MIN_BUFFER));
      if (this.#budget) {
        if (!this.#budget.take(size - this.#frame.length)) {
          throw new ProtocolError(
            "over_budget",
            `Partial frames are over the memory budget of '${this.#budget.limit}' bytes`,
          );
        }
        this.#held += size - this.#frame.length;
      }
      const grown = new Uint8Array(size);
      grown.set(this.#frame.subarray(0, this.#frameFill));
      this.#frame = grown;
    }
    this.#frame.set(chunk.subarray(off, off + n), this.#frameFill);
    const before = this.#frameFill;
    this.#frameFill = need;
    if (before < FIXED_LENGTH && need >= FIXED_LENGTH) checkFixed(this.#frame, this.#frameLength);
    return off + n;
  }
}

function checkMax(max: number): number {
  if (!Number.isInteger(max) || max < FIXED_LENGTH || max > MAX_FRAME_LENGTH) {
    throw new RangeError(
      `Cannot create FrameDecoder: maxFrameLength '${max}' is not in ${FIXED_LENGTH}..${MAX_FRAME_LENGTH}`,
    );
  }
  return max;
}

/** Rejects a frame by its fixed fields, before the rest of it is buffered. */
function checkFixed(frame: Uint8Array, length: number): void {
  const code = frame[0];
  if (TYPE_NAMES[code] === undefined) {
    throw new ProtocolError("unknown_type", `Unknown message type '${code}'`);
  }
  const headerLength = (frame[5] << 8) | frame[6];
  if (FIXED_LENGTH + headerLength > length) {
    throw new ProtocolError(
      "bad_header_length",
      `Header length '${headerLength}' does not fit in a frame of '${length}' bytes`,
    );
  }
  const bodyLength = length - FIXED_LENGTH - headerLength;
  if (bodyLength > MAX_BODY) {
    throw new ProtocolError(
      "body_too_large",
      `Body of '${bodyLength}' bytes is over the limit of '${MAX_BODY}' bytes`,
    );
  }
}

/** A complete frame (after its length field, already through `checkFixed`) as a message. */
function parseFrame(frame: Uint8Array): Message {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const type = TYPE_NAMES[frame[0]] as MessageTypeName;
  const requestId = view.getUint32(1);
  const headerEnd = FIXED_LENGTH + view.getUint16(5);
  let text: string;
  try {
    text = strictUtf8.decode(frame.subarray(FIXED_LENGTH, headerEnd));
  } catch (cause) {
    throw new ProtocolError("bad_header_encoding", `Header of '${type}' frame is not UTF-8`, {
      cause,
    });
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (cause) {
    throw new ProtocolError("bad_header_json", `Header of '${type}' frame is not JSON`, { cause });
  }
  // The frame buffer belongs to this message alone, so the body can be a view of it.
  const body = frame.subarray(headerEnd);
  const parsed = MessageSchemas[type].safeParse({ type, requestId, header, body });
  if (!parsed.success) {
    const part = parsed.error.issues.some((i) => i.path[0] === "header") ? "header" : "body";
    throw new ProtocolError(
      `bad_${part}`,
      `Bad ${part} in '${type}' frame: ${summarize(parsed.error)}`,
      { cause: parsed.error },
    );
  }
  return parsed.data as Message;
}

/** The first few issues of a zod error on one line, each with its path. */
function summarize(error: { issues: readonly { path: PropertyKey[]; message: string }[] }): string {
  const shown = error.issues.slice(0, 3).map((i) => {
    const path = i.path.map(String).join(".");
    return path ? `${path}: ${i.message}` : i.message;
  });
  const more = error.issues.length > 3 ? ` (and ${error.issues.length - 3} more)` : "";
  return shown.join("; ") + more;
}
