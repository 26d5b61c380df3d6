/**
 * One peer-to-peer connection speaking the wire protocol of `proto/frame.ts` over
 * any duplex byte stream (the TLS stream of `link_tls.ts`, a plaintext loopback
 * link, or two linked in-memory streams in tests). It opens with the link handshake
 * that `link_handshake.ts` drives (preambles and nonces, proofs of the network key,
 * HELLOs signed by the identity keys, frames capped at `HANDSHAKE_MAX_FRAME` until
 * then); only a proven peer's HELLO completes `open()`. After that either side may
 * send requests, pipelined, and answers come back in any order, matched by `requestId`;
 * theirs go to our handler, and what it returns or throws becomes the answer as
 * `request_answers.ts` says.
 *
 * ```text
 * handshake: reader ─► FrameDecoder ─► LinkHandshake.receive() ─► its answers written
 * reader ─► FrameDecoder.push() ─► answer type?  ─► settles our pending request
 *                                └► request type? ─► handler (≤ maxInFlight at once;
 *                                                    at the cap, stop reading)
 * request() / send() / answers ─► encodeFrameParts() ─► one writer, frames in order
 * ```
 *
 * Requests are HAVE_REQ, GET_CHUNK, PUT_CHUNK, MANIFEST_REQ, PEERS_REQ, LOG_REQ,
 * PING and HTTP_OPEN; answers are HAVE, CHUNK, PUT_OK, MANIFEST, PEERS, LOG, PONG and
 * ERROR. The frames of open HTTP tunnel streams go to `tunnels` (`tunnel_mux.ts`),
 * outside the request slots. A bad frame, a second HELLO, a failed proof (the refusing side sends ERROR
 * `network_key_mismatch`, `unauthorized`, `unexpected_peer` or `bad_handshake`
 * first), a silent peer (no proven HELLO within the handshake timeout, or no frame
 * either way within the idle timeout) closes the connection; `closeReason` and
 * `closeError` say why.
 *
 * @example Two connections over linked in-memory streams
 * ```ts
 * import assert from "node:assert/strict";
 * import { PeerConnection } from "./connection.ts";
 * import { testIdentity } from "./_link_fixtures.ts";
 *
 * const ab = new TransformStream<Uint8Array, Uint8Array>();
 * const ba = new TransformStream<Uint8Array, Uint8Array>();
 * const [ida, idb] = [await testIdentity("a"), await testIdentity("b")];
 * const [a, b] = await Promise.all([
 *   PeerConnection.open({ readable: ba.readable, writable: ab.writable, close() {} }, {
 *     hello: ida.hello,
 *     link: { role: "dialer", sign: ida.sign },
 *   }),
 *   PeerConnection.open({ readable: ab.readable, writable: ba.writable, close() {} }, {
 *     hello: idb.hello,
 *     link: { role: "acceptor", sign: idb.sign },
 *   }),
 * ]);
 * assert.equal(a.remote.name, "b");
 * const pong = await a.request({ type: "PING", header: { ts: 1 } });
 * assert.deepEqual(pong.header, { ts: 1 });
 * a.close();
 * await Promise.all([a.closed, b.closed]);
 * ```
 *
 * @module
 */
import { ByteReader } from "./byte_reader.ts";
import { PendingRequests } from "./pending_requests.ts";
import { type BufferPool, concatBytes } from "../proto/bytes.ts";
import {
  ANSWER_OF,
  type AnswerOf,
  type AnswerTypeName,
  isAnswerType,
  isRequestType,
  type OutgoingMessage,
  RemoteError,
  type RequestInit,
  type RequestTypeName,
} from "../proto/answers.ts";
import {
  errorMessage as textOf,
  P2pError,
  PeerTimeoutError,
  ProtocolError,
} from "../proto/errors.ts";
import { encodeFrame, encodeFrameParts, type FrameBudget, FrameDecoder } from "../proto/frame.ts";
import type { HelloHeader, Message, MessageInit } from "../proto/messages.ts";
import {
  afterLinkError,
  HANDSHAKE_MAX_FRAME,
  LinkHandshake,
  type LinkOptions,
} from "./link_handshake.ts";
import {
  answerRequest,
  errorMessage,
  type HandlerResult,
  type RequestHandler,
} from "./request_answers.ts";
import { isStreamFrame, TunnelMux } from "./tunnel_mux.ts";

export {
  ANSWER_OF,
  type AnswerTypeName,
  type HandlerResult,
  HANDSHAKE_MAX_FRAME,
  type LinkOptions,
  type OutgoingMessage,
  RemoteError,
  type RequestHandler,
  type RequestInit,
  type RequestTypeName,
};

/** Options of `PeerConnection.open()`. */
export interface ConnectionOptions {
  /** Our HELLO (with our `publicKey`), sent once the other side proved the network key. */
  hello: HelloHeader;
  /** Our side of the link handshake. */
  link: LinkOptions;
  /** Answers requests from the other side; when left out, each gets ERROR `unsupported`. */
  handler?: RequestHandler;
  /** Their preamble and proven HELLO must arrive within this many ms (default 5000). */
  handshakeTimeoutMs?: number;
  /** Close when no frame went either way for this many ms (default 60000). */
  idleTimeoutMs?: number;
  /** Requests from the other side handled at once (default 32); at the cap, reading pauses. */
  maxInFlight?: number;
  /** Largest frame accepted, passed to `FrameDecoder` (default its maximum). */
  maxFrameLength?: number;
  /** Where large incoming frames are read into, passed to `FrameDecoder` (default none). */
  framePool?: BufferPool;
  /**
   * Bound on the bytes of partial incoming frames, shared with other connections
   * (`FrameDecoder`'s `budget`); what this connection holds is given back when it closes.
   */
  frameBudget?: FrameBudget;
  /** Aborting it closes the connection. */
  signal?: AbortSignal;
  /** Told about peer misbehaviour that does not close the connection (e.g. a stray answer). */
  onWarning?: (message: string) => void;
}

/** Options of one `PeerConnection.request()`. */
export interface RequestOptions {
  /** Reject with `PeerTimeoutError` when no answer came within this many ms (default 30000). */
  timeoutMs?: number;
  /** Aborting it rejects the request with the signal's reason (a late answer is ignored). */
  signal?: AbortSignal;
}

/** The byte stream a connection runs over: a `Deno.TcpConn` or anything shaped like one. */
export interface DuplexConn {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  close(): void;
  remoteAddr?: Deno.Addr;
  /** Called with `true` when present: small frames must not wait for Nagle's algorithm. */
  setNoDelay?(noDelay?: boolean): void;
  /**
   * Reads into `p` directly, when present (a `Deno.Conn`): cheaper per read than the
   * readable stream, which matters on TLS, whose reads bring one 16 KiB record each.
   */
  read?(p: Uint8Array): Promise<number | null>;
}

const noop = () => {};

/**
 * A connection to one peer after a completed handshake. `PeerConnection.open()`
 * sends our preamble and HELLO and resolves once the other side's have arrived.
 * `request()` pipelines requests (ids from a wrapping u32 counter starting at 1) and
 * resolves with the matching answer; requests from the other side go to the
 * handler, at most `maxInFlight` at a time. Frames are written by one writer, in
 * order, each write awaited, so a slow reader slows its sender. `close()` is
 * idempotent, rejects pending requests and closes the stream; `closed` resolves once
 * the read loop has ended.
 *
 * While `maxInFlight` handlers run, nothing more is read, answers to our own
 * requests included: a handler that waits on a request over the same connection
 * can stall until a timeout when the other side fills the window.
 */
export class PeerConnection {
  /** The other side's address, for TCP connections. */
  readonly remoteAddr?: Deno.NetAddr;
  /** Resolves once the connection is fully closed; never rejects. */
  readonly closed: Promise<void>;
  /** The HTTP tunnel streams over this link, both ways. */
  readonly tunnels: TunnelMux;

  readonly #conn: DuplexConn;
  readonly #handler: RequestHandler | undefined;
  readonly #idleTimeoutMs: number;
  readonly #maxInFlight: number;
  readonly #onWarning: (message: string) => void;
  readonly #signal: AbortSignal | undefined;
  readonly #decoder: FrameDecoder;
  readonly #link: LinkHandshake;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: ByteReader | undefined;
  #remote: HelloHeader | undefined;
  readonly #pending = new PendingRequests();
  readonly #handshake = Promise.withResolvers<void>();
  readonly #readDone = Promise.withResolvers<void>();
  #inFlight = 0;
  #slot: PromiseWithResolvers<void> | undefined;
  #draining: PromiseWithResolvers<void> | undefined;
  #lastActivity = performance.now();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closeReason: string | undefined;
  #closeError: Error | undefined;

  private constructor(conn: DuplexConn, opts: ConnectionOptions) {
    this.#conn = conn;
    this.#handler = opts.handler;
    const handshakeTimeoutMs = positive("handshakeTimeoutMs", opts.handshakeTimeoutMs, 5000);
    this.#idleTimeoutMs = positive("idleTimeoutMs", opts.idleTimeoutMs, 60_000);
    this.#maxInFlight = positive("maxInFlight", opts.maxInFlight, 32);
    this.#onWarning = opts.onWarning ?? noop;
    this.#signal = opts.signal;
    this.#decoder = new FrameDecoder({
      maxFrameLength: HANDSHAKE_MAX_FRAME,
      pool: opts.framePool,
      budget: opts.frameBudget,
    });
    this.#link = new LinkHandshake({
      link: opts.link,
      hello: opts.hello,
      decoder: this.#decoder,
      maxFrameLength: opts.maxFrameLength,
      timeoutMs: handshakeTimeoutMs,
      send: (msg) => this.#write(framed(msg)),
      endWrites: () => this.#writer.close(),
      fail: (err) => this.#fail(err),
    });
    // (A `Deno.startTls` connection's address has no `transport`; it is TCP.)
    const ra = conn.remoteAddr as Partial<Deno.NetAddr> | undefined;
    if ((ra?.transport ?? "tcp") === "tcp" && ra?.hostname !== undefined && ra.port !== undefined) {
      this.remoteAddr = { transport: "tcp", hostname: ra.hostname, port: ra.port };
    }
    const { framePool: pool } = opts;
    this.tunnels = new TunnelMux({
      send: (m) => this.send(m),
      odd: opts.link.role === "dialer",
      release: pool && ((bytes) => pool.release(bytes)),
    });
    this.#writer = conn.writable.getWriter();
    this.closed = this.#readDone.promise;
    // Failures surface through open(); nobody else awaits the handshake promise.
    this.#handshake.promise.catch(noop);
  }

  /**
   * Runs the handshake over `conn`: sends our preamble and nonce, runs the link
   * handshake, and resolves with the connection once the other side's HELLO is
   * proven. Rejects, after closing `conn`, with `ProtocolError` (bad magic, a bad
   * frame, a handshake message out of order, the stream ending),
   * `VersionMismatchError`, `UnauthorizedError` (`network_key_mismatch`,
   * `unauthorized`, `unexpected_peer`), `PeerTimeoutError` (not done within
   * `handshakeTimeoutMs`), `RemoteError` (the other side sent ERROR, e.g. `busy` or
   * its refusal), `TypeError`/`RangeError` for bad options, or the signal's reason.
   */
  static async open(conn: DuplexConn, opts: ConnectionOptions): Promise<PeerConnection> {
    let greeting: Uint8Array;
    let pc: PeerConnection;
    try {
      encodeFrame({ type: "HELLO", requestId: 0, header: opts.hello }); // throws when invalid
      pc = new PeerConnection(conn, opts);
      greeting = pc.#link.greeting();
      // Nagle's algorithm holds a small frame back until the previous one is acked,
      // and a delayed ack takes 40 ms: pipelined requests and answers would stall.
      conn.setNoDelay?.(true);
    } catch (err) {
      try {
        conn.close();
      } catch { /* already closed */ }
      throw err;
    }
    pc.#start(greeting);
    try {
      await pc.#handshake.promise;
    } catch (err) {
      await pc.closed;
      throw err;
    }
    return pc;
  }

  /** The other side's HELLO. */
  get remote(): HelloHeader {
    return this.#remote!;
  }

  /** Why the connection closed, once it has: e.g. `closed by peer`, `idle timeout …`. */
  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  /** The error that closed the connection, when one did (protocol, timeout, I/O). */
  get closeError(): Error | undefined {
    return this.#closeError;
  }

  /** Our requests still awaiting their answers. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Requests from the other side being handled right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Sends a request and resolves with its answer (the frame with the same
   * `requestId`, of the request's answer type). Rejects with `RemoteError` when the
   * answer is ERROR, `ProtocolError` `unexpected_answer` when it is another type,
   * `PeerTimeoutError` after `timeoutMs` (default 30000), the signal's reason when
   * aborted, `TypeError` for a message that is not a valid request, and `P2pError`
   * `connection_closed` when the connection closes first.
   */
  request<T extends RequestTypeName>(
    msg: RequestInit<T> & { type: T },
    opts: RequestOptions = {},
  ): Promise<AnswerOf<T>> {
    const type: string = msg.type;
    if (!isRequestType(type)) {
      return Promise.reject(
        new TypeError(`Cannot send request: '${String(msg.type)}' is not a request type`),
      );
    }
    if (this.#closeReason !== undefined) return Promise.reject(this.#closedError());
    const timeoutMs = opts.timeoutMs ?? 30_000;
    if (!(timeoutMs > 0)) {
      return Promise.reject(
        new RangeError(`Cannot send request: timeoutMs '${timeoutMs}' is not positive`),
      );
    }
    const signal = opts.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const requestId = this.#pending.takeId();
    let frame: Uint8Array[];
    try {
      frame = framed({ ...msg, requestId } as MessageInit);
    } catch (err) {
      return Promise.reject(err);
    }
    const answer = this.#pending.wait(requestId, type, timeoutMs, signal);
    // A failed write closes the connection, which rejects the request.
    this.#write(frame).catch(noop);
    return answer as Promise<AnswerOf<T>>;
  }

  /**
   * Sends one message as is (its own `requestId`), resolving once it is written.
   * Rejects with `TypeError`/`RangeError` for an invalid message and `P2pError`
   * `connection_closed` when the connection is closed.
   */
  async send(msg: MessageInit): Promise<void> {
    await this.#write(framed(msg));
  }

  /**
   * Stops taking new requests from the other side (each gets ERROR `shutting_down`)
   * and resolves once the requests already being handled have been answered, or the
   * connection has closed. Our own requests and their answers go on as before.
   */
  drain(): Promise<void> {
    this.#draining ??= Promise.withResolvers<void>();
    if (this.#inFlight === 0 || this.#closeReason !== undefined) this.#draining.resolve();
    return this.#draining.promise;
  }

  /**
   * Closes the connection (idempotent): rejects pending requests, stops the timers,
   * cancels both streams and closes the underlying connection. `reason` becomes
   * `closeReason` (default `closed`).
   */
  close(reason = "closed"): void {
    if (this.#closeReason !== undefined) return;
    this.#closeReason = reason;
    clearTimeout(this.#timer);
    this.#link.stop();
    this.#signal?.removeEventListener("abort", this.#onAbort);
    const err = this.#closedError();
    this.#pending.rejectAll(err);
    this.tunnels.close(err);
    this.#handshake.reject(this.#closeError ?? err);
    this.#slot?.resolve();
    this.#draining?.resolve();
    this.#decoder.release();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    // For TCP the close above already ended both streams; for in-memory streams
    // these end our pending read and tell the other side.
    this.#reader?.cancel(err);
    this.#writer.abort(err).catch(noop);
  }

  /** Closes the connection and waits until it is fully closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }

  #start(greeting: Uint8Array): void {
    if (this.#signal?.aborted) {
      this.#onAbort();
      this.#readDone.resolve();
      return;
    }
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#link.start();
    // Read before the greeting is written: over streams without buffering, each
    // side's write only completes once the other side reads.
    this.#readLoop().finally(() => this.#readDone.resolve());
    this.#write([greeting]).catch(noop);
  }

  readonly #onAbort = () => {
    const reason = this.#signal?.reason;
    this.#fail(reason instanceof Error ? reason : new Error(`Aborted: ${String(reason)}`));
  };

  async #readLoop(): Promise<void> {
    const reader = this.#reader = new ByteReader(
      this.#conn.readable,
      this.#conn.read?.bind(this.#conn),
    );
    try {
      while (this.#closeReason === undefined) {
        // A chunk's bytes are read straight into its pooled frame, not copied there.
        const target = reader.direct ? this.#decoder.directTarget : undefined;
        const got = target ? await reader.readInto(target) : await reader.read();
        if (got === undefined) {
          this.#onEnd();
          break;
        }
        let messages: Message[];
        try {
          messages = typeof got === "number" ? this.#decoder.filled(got) : this.#decoder.push(got);
        } catch (err) {
          this.#fail(err as Error);
          break;
        }
        for (const msg of messages) {
          if (this.#closeReason !== undefined) break;
          this.#lastActivity = performance.now();
          if (!this.#remote) {
            const remote = await this.#link.receive(msg);
            if (remote) this.#linked(remote);
            continue;
          }
          if (!isAnswerType(msg.type) && msg.type !== "HELLO" && !isStreamFrame(msg.type)) {
            // Backpressure: at the cap, stop reading until a handler finishes.
            while (this.#inFlight >= this.#maxInFlight && this.#closeReason === undefined) {
              this.#slot = Promise.withResolvers<void>();
              await this.#slot.promise;
            }
            if (this.#closeReason !== undefined) break;
          }
          this.#dispatch(msg);
        }
      }
    } catch (err) {
      if (this.#closeReason === undefined) {
        this.#fail(new P2pError("read_failed", `Read failed: ${textOf(err)}`, { cause: err }));
      }
    } finally {
      reader.cancel();
    }
  }

  #onEnd(): void {
    try {
      this.#decoder.end();
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    if (!this.#remote) {
      this.#fail(
        new ProtocolError("closed", "Connection closed before the link handshake was done"),
      );
    } else {
      this.close("closed by peer");
    }
  }

  /** The other side is proven: requests may flow, watched by the idle timer. */
  #linked(remote: HelloHeader): void {
    this.#remote = remote;
    this.#lastActivity = performance.now();
    this.#timer = setTimeout(this.#onIdleTimer, this.#idleTimeoutMs);
    this.#handshake.resolve();
  }

  #dispatch(msg: Message): void {
    const linkError = afterLinkError(msg);
    if (linkError) {
      this.#fail(linkError);
    } else if (this.tunnels.receive(msg)) {
      // A frame of an open tunnel stream.
    } else if (isAnswerType(msg.type)) {
      this.#settle(msg);
    } else if (this.#draining) {
      this.#answer(msg, errorMessage("shutting_down", "Peer is shutting down")).catch(noop);
    } else {
      this.#inFlight++;
      this.#serve(msg).finally(this.#onServed);
    }
  }

  readonly #onServed = () => {
    this.#inFlight--;
    if (this.#slot && this.#inFlight < this.#maxInFlight) {
      this.#slot.resolve();
      this.#slot = undefined;
    }
    if (this.#inFlight === 0) this.#draining?.resolve();
  };

  #settle(msg: Message): void {
    if (!this.#pending.settle(msg) && !this.tunnels.refused(msg)) {
      this.#onWarning(
        `Ignored '${msg.type}' answer for unknown request '${msg.requestId}' (late or never sent)`,
      );
    }
  }

  /** Runs the handler on one request and sends what it returns; never rejects. */
  async #serve(msg: Message): Promise<void> {
    const out = await answerRequest(this.#handler, msg, this);
    if (out === undefined) return;
    try {
      await this.#answer(msg, out);
    } catch (err) {
      if (this.#closeReason !== undefined) return;
      // The handler returned something that is not a valid message.
      await this.#answer(msg, errorMessage("internal", textOf(err))).catch(noop);
    } finally {
      out.sent?.();
    }
  }

  #answer(request: Message, out: HandlerResult): Promise<void> {
    const { sent: _, ...message } = out;
    return this.#write(framed({ ...message, requestId: request.requestId } as MessageInit));
  }

  /** Writes the parts of one frame (or the greeting) back to back, before any other frame. */
  async #write(parts: Uint8Array[]): Promise<void> {
    if (this.#closeReason !== undefined) throw this.#closedError();
    try {
      // Queued together, so no other frame gets between them.
      await Promise.all(parts.map((p) => this.#writer.write(p)));
    } catch (err) {
      if (this.#closeReason === undefined) {
        this.#fail(new P2pError("write_failed", `Write failed: ${textOf(err)}`, { cause: err }));
      }
      throw this.#closedError();
    }
    this.#lastActivity = performance.now();
  }

  readonly #onIdleTimer = () => {
    const idle = performance.now() - this.#lastActivity;
    if (idle >= this.#idleTimeoutMs) {
      this.#fail(
        new PeerTimeoutError(`No frame either way for '${this.#idleTimeoutMs}' ms (idle timeout)`),
      );
    } else {
      // One timer per connection, re-armed for the rest of the period, instead of
      // a new timer for every frame.
      this.#timer = setTimeout(this.#onIdleTimer, this.#idleTimeoutMs - idle);
    }
  };

  #fail(err: Error): void {
    if (this.#closeReason !== undefined) return;
    this.#closeError = err;
    this.close(`${err.name}${err instanceof P2pError ? ` (${err.code})` : ""}: ${err.message}`);
  }

  #closedError(): Error {
    return new P2pError("connection_closed", `Connection is closed: ${this.#closeReason}`, {
      cause: this.#closeError,
    });
  }
}

/** Bodies up to this size are copied behind their header: one write beats two for them. */
const COPY_BODY_UNDER = 64 * 1024;

/** One message as the buffers to write: a large body goes as it is, after its header. */
function framed(msg: MessageInit): Uint8Array[] {
  const [head, body] = encodeFrameParts(msg);
  if (body.length === 0) return [head];
  return body.length >= COPY_BODY_UNDER ? [head, body] : [concatBytes(head, body)];
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`Cannot open connection: ${name} '${value}' is not a positive number`);
  }
  return value;
}
