/**
 * The peer's TCP chunk service: a listener that runs the wire handshake on each
 * accepted connection and hands the other side's requests to an injected handler
 * (the chunk store's serving logic lives elsewhere). Each connection is a
 * `PeerConnection`, so both sides may send requests on it.
 *
 * A bad peer loses only its own connection: garbage, another protocol or version,
 * an oversized frame, or a connection that never says HELLO within the handshake
 * timeout is closed and reported as a `conn.error` event, and the service goes on.
 * Over `maxConnections` (handshakes included), a new connection gets a preamble and
 * an ERROR `busy` and is closed at once. `stop()` closes the listener, lets the
 * answers being prepared finish within a grace period, then closes the rest.
 * `onConnection(conn)` gets each connection once its handshake is done, e.g. to
 * note an inbound peer or to send it requests of our own.
 *
 * Events (`onEvent(type, fields)`):
 *
 * | type           | fields                                         |
 * | -------------- | ---------------------------------------------- |
 * | `conn.open`    | `peerId`, `remote`                             |
 * | `conn.close`   | `peerId`, `remote`, `reason`, `code?`          |
 * | `conn.reject`  | `remote`, `reason` (over `maxConnections`)     |
 * | `conn.error`   | `remote`, `reason`, `code?` (failed handshake) |
 * | `conn.warning` | `peerId`, `remote`, `message` (e.g. a stray answer) |
 * | `accept.error` | `error` (the service backs off 100 ms and goes on) |
 *
 * @example Serve PING and fetch an answer
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectPeer } from "./dial.ts";
 * import { startChunkService } from "./service.ts";
 *
 * const hello = (name: string) => ({
 *   peerId: name.repeat(40), // 40 hex digits
 *   name,
 *   version: "0.1.0",
 *   ports: { chunk: 5801 },
 * });
 * await using service = await startChunkService({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   hello: () => hello("a"),
 *   handler: () => undefined, // PING is answered with PONG anyway
 * });
 * await using conn = await connectPeer(service.addr, { hello: hello("c") });
 * assert.equal((await conn.request({ type: "PING", header: {} })).type, "PONG");
 * ```
 *
 * @module
 */
import { concatBytes } from "../proto/bytes.ts";
import { errorMessage, P2pError } from "../proto/errors.ts";
import { hostPort } from "../lib/net_addr.ts";
import { encodeFrame, encodePreamble } from "../proto/frame.ts";
import type { HelloHeader } from "../proto/messages.ts";
import { PeerConnection, type RequestHandler } from "./connection.ts";

/** Options of `startChunkService()`. */
export interface ChunkServiceOptions {
  /** Address to listen on (unless `listener` is given). */
  hostname?: string;
  /** Port to listen on; 0 lets the kernel choose (read it back from `addr`). */
  port?: number;
  /**
   * A listener bound already (so its port is known before the service starts):
   * served instead of `hostname:port`, and closed by `stop()`.
   */
  listener?: Deno.TcpListener;
  /** Our HELLO, asked for each new connection. */
  hello: () => HelloHeader;
  /** Answers the other side's requests. */
  handler: RequestHandler;
  /** Connections open at once, handshakes included (default 256); more are refused. */
  maxConnections?: number;
  /** Passed to each `PeerConnection` (default 5000). */
  handshakeTimeoutMs?: number;
  /** Passed to each `PeerConnection` (default 60000). */
  idleTimeoutMs?: number;
  /** Passed to each `PeerConnection` (default 32). */
  maxInFlight?: number;
  /** Passed to each `PeerConnection` (default the decoder's maximum). */
  maxFrameLength?: number;
  /** Called with each connection once its handshake is done (e.g. to note an inbound peer). */
  onConnection?: (conn: PeerConnection) => void;
  /** Told about each connection's life; see the module docs for the types. */
  onEvent?: (type: string, fields: Record<string, unknown>) => void;
}

/** Counters of a running chunk service. */
export interface ChunkServiceStats {
  /** Connections open now, handshakes included. */
  open: number;
  /** Connections accepted under the cap. */
  accepted: number;
  /** Connections refused over `maxConnections`. */
  rejected: number;
  /** Accepted connections whose handshake failed. */
  failed: number;
}

/** A running chunk service. */
export interface ChunkService extends AsyncDisposable {
  /** The address it listens on, with the port the kernel chose. */
  readonly addr: Deno.NetAddr;
  /** Connections past their handshake. */
  readonly connections: ReadonlySet<PeerConnection>;
  /** Counters since the start. */
  readonly stats: ChunkServiceStats;
  /**
   * Closes the listener, waits up to `graceMs` (default 5000) for the requests being
   * handled to be answered, then closes every connection. Idempotent: later calls
   * return the first call's promise.
   */
  stop(graceMs?: number): Promise<void>;
}

/** Wait after an accept error (such as running out of file descriptors). */
const ACCEPT_BACKOFF_MS = 100;
/** What a connection over the cap gets before it is closed. */
const BUSY = concatBytes(
  encodePreamble(),
  encodeFrame({
    type: "ERROR",
    requestId: 0,
    header: { code: "busy", message: "Peer has too many connections" },
  }),
);
const noop = () => {};

/**
 * Listens on `hostname:port` (or serves `listener`) and serves the wire protocol on
 * every connection with `handler`. Resolves once listening; throws the `Deno.errors` of `Deno.listen`
 * (e.g. `AddrInUse`) and `RangeError` for a bad `maxConnections`.
 */
export function startChunkService(opts: ChunkServiceOptions): Promise<ChunkService> {
  try {
    return Promise.resolve(createChunkService(opts));
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Like `startChunkService()`, but returns the running service at once (listening
 * is synchronous): what a constructor that is given a bound `listener` calls. Throws
 * what `startChunkService()` rejects with.
 */
export function createChunkService(opts: ChunkServiceOptions): ChunkService {
  return new TcpChunkService(opts);
}

class TcpChunkService implements ChunkService {
  readonly addr: Deno.NetAddr;
  readonly #opts: ChunkServiceOptions;
  readonly #maxConnections: number;
  readonly #listener: Deno.TcpListener;
  readonly #connections = new Set<PeerConnection>();
  /** One per accepted connection, settled once it is closed. */
  readonly #tasks = new Set<Promise<void>>();
  /** Aborted when stop() begins: ends the accept loop's back-off. */
  readonly #stopping = new AbortController();
  /** Aborted when stop() ends: closes connections still in their handshake. */
  readonly #closeAll = new AbortController();
  readonly #acceptLoop: Promise<void>;
  #stopped: Promise<void> | undefined;
  #open = 0;
  #accepted = 0;
  #rejected = 0;
  #failed = 0;

  constructor(opts: ChunkServiceOptions) {
    const max = opts.maxConnections ?? 256;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(
        `Cannot start chunk service: maxConnections '${max}' is not a positive integer`,
      );
    }
    this.#opts = opts;
    this.#maxConnections = max;
    if (opts.listener) this.#listener = opts.listener;
    else if (opts.hostname !== undefined && opts.port !== undefined) {
      this.#listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
    } else {
      throw new TypeError("Cannot start chunk service: give a listener, or a hostname and a port");
    }
    this.addr = this.#listener.addr;
    this.#acceptLoop = this.#acceptAll();
  }

  get connections(): ReadonlySet<PeerConnection> {
    return this.#connections;
  }

  get stats(): ChunkServiceStats {
    return {
      open: this.#open,
      accepted: this.#accepted,
      rejected: this.#rejected,
      failed: this.#failed,
    };
  }

  stop(graceMs = 5000): Promise<void> {
    this.#stopped ??= this.#stop(graceMs);
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #stop(graceMs: number): Promise<void> {
    this.#stopping.abort();
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    await this.#acceptLoop;
    const drained = Promise.all([...this.#connections].map((c) => c.drain()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
    await Promise.race([drained, grace]);
    clearTimeout(timer);
    for (const conn of this.#connections) conn.close("service stopped");
    this.#closeAll.abort(new Error("Service stopped"));
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
  }

  async #acceptAll(): Promise<void> {
    while (!this.#stopping.signal.aborted) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#stopping.signal.aborted || err instanceof Deno.errors.BadResource) return;
        // EMFILE and the like: the connection waits in the backlog, so pause
        // instead of spinning on the same error.
        this.#emit("accept.error", { error: errorMessage(err) });
        await this.#backoff();
        continue;
      }
      this.#track(conn);
    }
  }

  #track(conn: Deno.TcpConn): void {
    const remote = formatAddr(conn.remoteAddr);
    let task: Promise<void>;
    if (this.#open >= this.#maxConnections) {
      this.#rejected++;
      this.#emit("conn.reject", { remote, reason: "too many connections" });
      // Tell it why (a fresh socket's send buffer takes 80 bytes at once), then close.
      task = conn.write(BUSY).then(noop, noop).finally(() => closeQuietly(conn));
    } else {
      this.#open++;
      this.#accepted++;
      task = this.#serve(conn, remote).finally(() => this.#open--);
    }
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** Runs one connection from handshake to close; never rejects. */
  async #serve(conn: Deno.TcpConn, remote: string): Promise<void> {
    // Set once the handshake is done; warnings can come just before.
    const who: { peerId?: string } = {};
    let hello: HelloHeader;
    try {
      hello = this.#opts.hello();
    } catch (err) {
      closeQuietly(conn);
      this.#failed++;
      this.#emit("conn.error", { remote, ...describe(err) });
      return;
    }
    let pc: PeerConnection;
    try {
      pc = await PeerConnection.open(conn, {
        hello,
        handler: this.#opts.handler,
        handshakeTimeoutMs: this.#opts.handshakeTimeoutMs,
        idleTimeoutMs: this.#opts.idleTimeoutMs,
        maxInFlight: this.#opts.maxInFlight,
        maxFrameLength: this.#opts.maxFrameLength,
        signal: this.#closeAll.signal,
        onWarning: (message) => this.#emit("conn.warning", { peerId: who.peerId, remote, message }),
      });
    } catch (err) {
      // open() has closed the connection.
      this.#failed++;
      this.#emit("conn.error", { remote, ...describe(err) });
      return;
    }
    const peerId = who.peerId = pc.remote.peerId;
    this.#connections.add(pc);
    // A handshake that completed during stop() takes no new requests.
    if (this.#stopping.signal.aborted) pc.drain();
    try {
      this.#opts.onConnection?.(pc);
    } catch { /* a failing listener must not stop the service */ }
    this.#emit("conn.open", { peerId, remote });
    await pc.closed;
    this.#connections.delete(pc);
    const err = pc.closeError;
    this.#emit("conn.close", {
      peerId,
      remote,
      reason: pc.closeReason,
      ...(err instanceof P2pError ? { code: err.code } : {}),
    });
  }

  async #backoff(): Promise<void> {
    const signal = this.#stopping.signal;
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(resolve, ACCEPT_BACKOFF_MS);
    const onStop = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", onStop, { once: true });
    await promise;
    signal.removeEventListener("abort", onStop);
  }

  #emit(type: string, fields: Record<string, unknown>): void {
    try {
      this.#opts.onEvent?.(type, fields);
    } catch { /* a failing listener must not stop the service */ }
  }
}

function describe(err: unknown): { reason: string; code?: string } {
  if (!(err instanceof Error)) return { reason: String(err) };
  return err instanceof P2pError
    ? { reason: `${err.name}: ${err.message}`, code: err.code }
    : { reason: `${err.name}: ${err.message}` };
}

function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return hostPort(addr.hostname, addr.port);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
