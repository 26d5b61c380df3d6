/**
 * The link handshake of one connection: runs the `LinkAuth` state machine of
 * `proto/link_auth.ts` for a `PeerConnection` (`connection.ts`). It owns the
 * greeting (our preamble and AUTH_NONCE), sends what the machine answers (AUTH_KEY,
 * our HELLO, or the ERROR that refuses the other side, after which our side of the
 * stream is ended), the frame cap before the other side is proven
 * (`HANDSHAKE_MAX_FRAME`, raised once it is) and the handshake deadline. The
 * connection reads and decodes; it gives each message to `receive()` until that
 * returns the proven HELLO, and carries on without the handshake.
 *
 * ```text
 * greeting() ─► written first
 * FrameDecoder ─► receive(msg) ─► LinkAuth.receive() ─► send() each answer
 *                                                   └► error? flush, fail()
 *                                                   └► proven? raise the frame cap,
 *                                                      stop the deadline, return HELLO
 * ```
 *
 * @example Both sides of a link, each sending straight into the other's decoder
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, FrameDecoder } from "../proto/frame.ts";
 * import type { HelloHeader, Message } from "../proto/messages.ts";
 * import { LinkHandshake } from "./link_handshake.ts";
 * import { testIdentity } from "./_link_fixtures.ts";
 *
 * const decoders = { a: new FrameDecoder(), b: new FrameDecoder() };
 * const inbox = { a: [] as Message[], b: [] as Message[] };
 * const deliver = (to: "a" | "b", bytes: Uint8Array) => {
 *   inbox[to].push(...decoders[to].push(bytes));
 * };
 * const side = async (me: "a" | "b", other: "a" | "b", role: "dialer" | "acceptor") => {
 *   const id = await testIdentity(me);
 *   return new LinkHandshake({
 *     link: { role, sign: id.sign },
 *     hello: id.hello,
 *     decoder: decoders[me],
 *     timeoutMs: 5000,
 *     send: (msg) => Promise.resolve(deliver(other, encodeFrame(msg))),
 *     endWrites: () => Promise.resolve(),
 *     fail: (err) => assert.fail(err),
 *   });
 * };
 * const [a, b] = [await side("a", "b", "dialer"), await side("b", "a", "acceptor")];
 * deliver("b", a.greeting());
 * deliver("a", b.greeting());
 * let [remoteOfA, remoteOfB]: (HelloHeader | undefined)[] = [];
 * while (inbox.a.length + inbox.b.length > 0) {
 *   for (const msg of inbox.a.splice(0)) remoteOfA ??= await a.receive(msg);
 *   for (const msg of inbox.b.splice(0)) remoteOfB ??= await b.receive(msg);
 * }
 * assert.equal(remoteOfA?.name, "b");
 * assert.equal(remoteOfB?.name, "a");
 * ```
 *
 * @module
 */
import { RemoteError } from "../proto/answers.ts";
import { concatBytes } from "../proto/bytes.ts";
import { PeerTimeoutError, ProtocolError } from "../proto/errors.ts";
import {
  encodeFrame,
  encodePreamble,
  type FrameDecoder,
  MAX_FRAME_LENGTH,
} from "../proto/frame.ts";
import { LinkAuth, type LinkRole } from "../proto/link_auth.ts";
import { type HelloHeader, MAX_HEADER, type Message, type MessageInit } from "../proto/messages.ts";

/** Largest frame taken before the handshake is done: a header's worth (64 KiB). */
export const HANDSHAKE_MAX_FRAME = 7 + MAX_HEADER;

/** How this side proves itself on the link (`proto/link_auth.ts`). */
export interface LinkOptions {
  /** Our end of the TCP connection. */
  role: LinkRole;
  /** Signs with our identity key. */
  sign: (data: Uint8Array) => Promise<Uint8Array>;
  /** SHA-256 of the link's TLS certificate (`link_tls.ts`); empty or left out: none. */
  fingerprint?: Uint8Array;
  /** The network key; left out: an open network. */
  networkKey?: Uint8Array;
  /** Refuse a proven peer with another id (we dialed a known peer). */
  expectPeerId?: string;
}

/** Options of a `LinkHandshake`: our side of the link and what it needs of its connection. */
export interface LinkHandshakeOptions {
  /** Our side of the link handshake. */
  link: LinkOptions;
  /** Our HELLO (with our `publicKey`), sent once the other side proved the network key. */
  hello: HelloHeader;
  /** The connection's decoder: capped at `HANDSHAKE_MAX_FRAME` until the other side is proven. */
  decoder: FrameDecoder;
  /** Largest frame once the other side is proven (default `MAX_FRAME_LENGTH`). */
  maxFrameLength?: number;
  /** The other side's proven HELLO must arrive within this many ms of `start()`. */
  timeoutMs: number;
  /** Writes one message on the connection; rejects when it is closed. */
  send: (msg: MessageInit) => Promise<void>;
  /** Ends our side of the stream (after a refusal, so the last ERROR gets through). */
  endWrites: () => Promise<void>;
  /** Closes the connection with this error (a refusal, a bad message, the deadline). */
  fail: (err: Error) => void;
}

const noop = () => {};

/**
 * What a handshake message means once the link is up, as the error that closes the
 * connection: a second HELLO (`unexpected_hello`) or a LINK, AUTH_NONCE or AUTH_KEY
 * (`bad_handshake`) is a `ProtocolError`; an ERROR for request id 0 is a `RemoteError`,
 * the other side's refusal of the link (a dialer completes its side first) or a
 * notice that it closes. Undefined for any other message.
 */
export function afterLinkError(msg: Message): Error | undefined {
  if (msg.type === "HELLO") {
    return new ProtocolError("unexpected_hello", "Peer sent a second HELLO");
  }
  // Request ids start at 1: an ERROR for 0 is about the link, not a request.
  if (msg.type === "ERROR" && msg.requestId === 0) {
    return new RemoteError(msg.header.code, msg.header.message);
  }
  if (msg.type === "LINK" || msg.type === "AUTH_NONCE" || msg.type === "AUTH_KEY") {
    return new ProtocolError("bad_handshake", `Peer sent '${msg.type}' after the link handshake`);
  }
  return undefined;
}

/**
 * Drives one connection's link handshake. The constructor caps `decoder` at
 * `HANDSHAKE_MAX_FRAME` (or `maxFrameLength` when lower; `RangeError` when that is
 * out of range), `greeting()` gives the first bytes to write, `start()` arms the
 * deadline, and `receive()` takes the other side's messages one at a time, in order,
 * each awaited. `stop()` (idempotent) clears the deadline when the connection closes.
 */
export class LinkHandshake {
  readonly #opts: LinkHandshakeOptions;
  readonly #auth: LinkAuth;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /** A handshake for one connection; throws `TypeError` when our HELLO has no public key. */
  constructor(opts: LinkHandshakeOptions) {
    this.#opts = opts;
    opts.decoder.maxFrameLength = Math.min(
      HANDSHAKE_MAX_FRAME,
      opts.maxFrameLength ?? HANDSHAKE_MAX_FRAME,
    );
    const { role, sign, fingerprint, networkKey, expectPeerId } = opts.link;
    this.#auth = new LinkAuth({
      role,
      sign,
      fingerprint: fingerprint ?? new Uint8Array(0),
      networkKey,
      expectPeerId,
      hello: opts.hello,
    });
  }

  /** The other side's HELLO once proven, else undefined. */
  get remote(): HelloHeader | undefined {
    return this.#auth.remote;
  }

  /** The first bytes to write on the connection: our preamble and AUTH_NONCE. */
  greeting(): Uint8Array {
    return concatBytes(encodePreamble(), encodeFrame(this.#auth.start()));
  }

  /** Arms the deadline: `fail()` gets `PeerTimeoutError` when not done within `timeoutMs`. */
  start(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#opts.fail(
        new PeerTimeoutError(
          `Peer did not complete the handshake within '${this.#opts.timeoutMs}' ms`,
        ),
      );
    }, this.#opts.timeoutMs);
  }

  /**
   * Takes the other side's next message: sends the machine's answers and resolves
   * with the other side's HELLO once it is proven (the frame cap is then raised and
   * the deadline stopped), else undefined. On a refusal it sends the ERROR, ends our
   * side of the stream (waiting at most 1 s) and calls `fail()`. Rejects only with
   * `RangeError` when `maxFrameLength` is out of range.
   */
  async receive(msg: Message): Promise<HelloHeader | undefined> {
    const step = await this.#auth.receive(msg);
    if (this.#stopped) return undefined;
    // Not awaited: over unbuffered streams a write completes only once the other
    // side reads, and it may be writing to us at the same time.
    const written = Promise.all(step.send.map((out) => this.#opts.send(out))).catch(noop);
    if (step.error) {
      if (step.send.length > 0) await this.#flush(written);
      this.#opts.fail(step.error);
      return undefined;
    }
    if (!step.remote) return undefined;
    const { decoder, maxFrameLength } = this.#opts;
    if (maxFrameLength !== HANDSHAKE_MAX_FRAME) {
      decoder.maxFrameLength = maxFrameLength ?? MAX_FRAME_LENGTH;
    }
    this.stop();
    return step.remote;
  }

  /** Clears the deadline (idempotent); later messages are ignored. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Ends our side of the stream so a last ERROR reaches the other side (at most 1 s). */
  async #flush(written: Promise<unknown>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      written.then(() => this.#opts.endWrites()).catch(noop),
      new Promise<void>((resolve) => timer = setTimeout(resolve, 1000)),
    ]);
    clearTimeout(timer);
  }
}
