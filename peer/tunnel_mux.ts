/**
 * The tunnel streams of one peer link: HTTP carried inside the encrypted,
 * authenticated link instead of a plain TCP connection between the peers. Each
 * `PeerConnection` has one `TunnelMux`; it opens streams (`open()`: HTTP_OPEN, then
 * HTTP_OPENED or HTTP_RESET from the other side), takes those the other side opens
 * (`accept()`, called by the request handler for HTTP_OPEN), and routes every stream
 * frame (HTTP_OPENED, HTTP_DATA, HTTP_WINDOW, HTTP_END, HTTP_RESET) to its stream
 * (`receive()`). Flow control and ends are `tunnel_stream.ts`'s.
 *
 * ```text
 * opener                                   acceptor
 * HTTP_OPEN id ─────────────────────────►  accept(id) ─► its main HTTP server
 *           ◄──────────────────────────── HTTP_OPENED id  (or HTTP_RESET id, code)
 * HTTP_DATA id ◄──────────────────────►  HTTP_DATA id    (each way ≤ TUNNEL_WINDOW unread)
 * HTTP_WINDOW id ◄────────────────────►  HTTP_WINDOW id  (credit for bytes read)
 * HTTP_END id ◄───────────────────────►  HTTP_END id     (one way done; both: stream done)
 * ```
 *
 * Stream ids are odd when the link's dialer opens the stream and even when its
 * acceptor does, so both sides open streams without a clash, as in yamux. Each side
 * has at most `maxStreams` (default `MAX_TUNNELS_PER_LINK`) streams open that it
 * opened, and takes at most as many opened by the other side (`too_many_tunnels`).
 * Frames for a stream that is not open (ended, reset, never opened) are dropped:
 * they may cross an HTTP_RESET on the wire. Stream frames take no request slot of
 * the connection, so a tunnel never holds back chunk requests; and since no DATA
 * frame is over `MAX_TUNNEL_DATA`, none holds the link long.
 *
 * @module
 */
import { P2pError, PeerTimeoutError } from "../proto/errors.ts";
import { MAX_TUNNELS_PER_LINK, type Message, type MessageInit } from "../proto/messages.ts";
import { type StreamLink, TUNNEL_BUFFERS, TunnelStream } from "./tunnel_stream.ts";

export { TunnelStream };

/** The frame types of open streams, which the mux takes (HTTP_OPEN is a request). */
const STREAM_FRAMES: ReadonlySet<string> = new Set([
  "HTTP_OPENED",
  "HTTP_DATA",
  "HTTP_WINDOW",
  "HTTP_END",
  "HTTP_RESET",
]);

/** Whether a frame of this type belongs to an open tunnel stream (and so to the mux). */
export function isStreamFrame(type: string): boolean {
  return STREAM_FRAMES.has(type);
}

/** How long the other side has to answer an HTTP_OPEN, by default. */
export const OPEN_TIMEOUT_MS = 10_000;

/** Options of a `TunnelMux`. */
export interface TunnelMuxOptions {
  /** Writes one frame on the link; resolves once written. */
  send(msg: MessageInit): Promise<void>;
  /** Whether this side opens odd stream ids (the link's dialer) or even ones. */
  odd: boolean;
  /** Streams open at once each way (default `MAX_TUNNELS_PER_LINK`). */
  maxStreams?: number;
  /**
   * Gives back a pooled buffer a frame was read into (the link's frame pool, see
   * `FrameDecoder`): a DATA body in one is copied into a `TUNNEL_BUFFERS` buffer and
   * its own given back at once, so a stream's queue holds its bytes, not 1 MiB buffers.
   */
  release?: (bytes: Uint8Array) => void;
}

/** Options of `TunnelMux.open()`. */
export interface OpenOptions {
  /** The name the stream gives its other end (its `remoteAddr.hostname`). */
  remote: string;
  /** Rejects with `PeerTimeoutError` when not answered within this many ms (`OPEN_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** Aborting it gives up the open. */
  signal?: AbortSignal;
}

/** The tunnel streams of one link, both ways. */
export class TunnelMux {
  readonly #send: (msg: MessageInit) => Promise<void>;
  readonly #odd: boolean;
  readonly #max: number;
  readonly #giveBack: ((bytes: Uint8Array) => void) | undefined;
  readonly #streams = new Map<number, TunnelStream>();
  readonly #opening = new Map<number, PromiseWithResolvers<void>>();
  /** The streams each way: opened here, and taken from the other side. */
  #outbound = 0;
  #inbound = 0;
  #nextId: number;
  #closed: Error | undefined;
  readonly #link: StreamLink;

  constructor(opts: TunnelMuxOptions) {
    this.#send = opts.send;
    this.#odd = opts.odd;
    this.#max = opts.maxStreams ?? MAX_TUNNELS_PER_LINK;
    this.#giveBack = opts.release;
    this.#nextId = opts.odd ? 1 : 2;
    this.#link = {
      send: (msg) => this.#send(msg),
      release: (stream) => this.#release(stream),
    };
  }

  /** Streams open now that this side opened. */
  get outbound(): number {
    return this.#outbound;
  }

  /** Streams open now that the other side opened. */
  get inbound(): number {
    return this.#inbound;
  }

  /**
   * Opens a stream to the other side's main HTTP server and resolves with it once
   * the other side took it. Rejects with `P2pError` `too_many_tunnels` when this side
   * has `maxStreams` open already, with the other side's refusal (`P2pError` with its
   * code), `PeerTimeoutError`, the signal's reason, or `connection_closed`.
   */
  async open(opts: OpenOptions): Promise<TunnelStream> {
    if (this.#closed) throw this.#closed;
    if (this.#outbound >= this.#max) {
      throw new P2pError(
        "too_many_tunnels",
        `Cannot open a tunnel: '${this.#max}' are open on this link already`,
        { status: 503 },
      );
    }
    const id = this.#takeId();
    const stream = this.#add(id, opts.remote, true);
    const opened = Promise.withResolvers<void>();
    // Settled maybe before it is awaited (while HTTP_OPEN is written).
    opened.promise.catch(() => {});
    this.#opening.set(id, opened);
    const timeoutMs = opts.timeoutMs ?? OPEN_TIMEOUT_MS;
    const timer = setTimeout(
      () => opened.reject(new PeerTimeoutError(`Tunnel open not answered within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => opened.reject(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (opts.signal?.aborted) throw opts.signal.reason;
      await this.#send({ type: "HTTP_OPEN", requestId: id, header: {} });
      await opened.promise;
      return stream;
    } catch (err) {
      stream.close();
      throw err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      this.#opening.delete(id);
    }
  }

  /**
   * Takes stream `id`, which the other side opened with HTTP_OPEN, naming its other
   * end `remote`. Throws `P2pError` `bad_stream` for an id this side would open or one
   * in use, `too_many_tunnels` at the limit, `connection_closed` once closed.
   */
  accept(id: number, remote: string): TunnelStream {
    if (this.#closed) throw this.#closed;
    if ((id % 2 === 1) === this.#odd) {
      throw new P2pError("bad_stream", `Stream id '${id}' is one this side opens`);
    }
    if (this.#streams.has(id)) throw new P2pError("bad_stream", `Stream '${id}' is open already`);
    if (this.#inbound >= this.#max) {
      throw new P2pError(
        "too_many_tunnels",
        `Cannot take another tunnel: '${this.#max}' are open on this link already`,
        { status: 503 },
      );
    }
    return this.#add(id, remote, false);
  }

  /**
   * Routes a frame of an open stream (see `isStreamFrame()`); false for any other
   * frame. A frame that breaks flow control resets its stream (`flow_control`).
   */
  receive(msg: Message): boolean {
    if (!isStreamFrame(msg.type)) return false;
    const id = msg.requestId;
    const stream = this.#streams.get(id);
    switch (msg.type) {
      case "HTTP_OPENED":
        this.#opening.get(id)?.resolve();
        break;
      case "HTTP_DATA": {
        let body = msg.body;
        // A pooled buffer goes on past the frame (a frame's own buffer ends with it).
        if (this.#giveBack && body.byteOffset + body.byteLength < body.buffer.byteLength) {
          const own = TUNNEL_BUFFERS.take(body.length);
          own.set(body);
          this.#giveBack(body);
          body = own;
        }
        if (!stream) TUNNEL_BUFFERS.release(body);
        else if (!stream.receiveData(body)) {
          TUNNEL_BUFFERS.release(body);
          this.#breach(stream, "more bytes than its credit");
        }
        break;
      }
      case "HTTP_WINDOW":
        if (stream && !stream.receiveWindow(msg.header.credit)) {
          this.#breach(stream, "credit over the window");
        }
        break;
      case "HTTP_END":
        stream?.receiveEnd();
        break;
      case "HTTP_RESET": {
        const err = new P2pError(msg.header.code, `Tunnel stream reset: ${msg.header.message}`, {
          status: 502,
        });
        this.#opening.get(id)?.reject(err);
        stream?.abort(err);
        break;
      }
    }
    return true;
  }

  /**
   * An ERROR that answers one of this side's HTTP_OPENs (from a peer that does not
   * serve tunnels): that open fails with its code. False when it answers none.
   */
  refused(msg: Message): boolean {
    const opening = this.#opening.get(msg.requestId);
    if (msg.type !== "ERROR" || !opening) return false;
    opening.reject(new P2pError(msg.header.code, `Tunnel refused: ${msg.header.message}`));
    return true;
  }

  /** The link closed: every stream breaks with `err`, and opens fail with it. */
  close(err: Error): void {
    this.#closed ??= err;
    for (const opening of this.#opening.values()) opening.reject(err);
    for (const stream of [...this.#streams.values()]) stream.abort(err);
  }

  #takeId(): number {
    let id = this.#nextId;
    while (this.#streams.has(id)) id = id + 2 > 0xffff_ffff ? (this.#odd ? 1 : 2) : id + 2;
    this.#nextId = id + 2 > 0xffff_ffff ? (this.#odd ? 1 : 2) : id + 2;
    return id;
  }

  #add(id: number, remote: string, outbound: boolean): TunnelStream {
    const stream = new TunnelStream(id, this.#link, remote);
    this.#streams.set(id, stream);
    if (outbound) this.#outbound++;
    else this.#inbound++;
    return stream;
  }

  #release(stream: TunnelStream): void {
    if (this.#streams.get(stream.id) !== stream) return;
    this.#streams.delete(stream.id);
    if ((stream.id % 2 === 1) === this.#odd) this.#outbound--;
    else this.#inbound--;
  }

  /** The other side broke the stream's flow control: it is reset. */
  #breach(stream: TunnelStream, what: string): void {
    const message = `Tunnel stream '${stream.id}' got ${what}`;
    this.#send({
      type: "HTTP_RESET",
      requestId: stream.id,
      header: { code: "flow_control", message },
    })
      .catch(() => {});
    stream.abort(new P2pError("flow_control", message));
  }
}
