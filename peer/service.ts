/**
 * The peer's TCP chunk service: a listener that runs the link start and TLS of
 * `link_tls.ts` and the link handshake of `connection.ts` on each accepted
 * connection, and hands a proven peer's requests to an injected handler (the chunk
 * store's serving logic lives elsewhere). Each connection is a `PeerConnection`, so
 * both sides may send requests on it.
 *
 * A bad peer loses only its own connection: garbage, another protocol or version,
 * an oversized frame, a stranger without the network key, a false identity, or a
 * connection that is not proven within the handshake timeout is closed and reported
 * as a `conn.error` event (with the refusal's `code`, e.g. `network_key_mismatch`),
 * and the service goes on. Over `maxConnections` (handshakes included), or over
 * `maxPerAddress` from one remote address, a new connection gets a preamble and an
 * ERROR `busy` and is closed at once. New connections from one address are also
 * rate-limited before any TLS work is spent on them (`connectionRate`, by default
 * 20 per 10 s; loopback addresses `loopbackConnectionRate`, 2,000 then 100 a second,
 * since every peer on this machine dials from 127.0.0.1): one over it gets a
 * preamble and an ERROR `rate_limited`, and is closed; its `conn.reject` events are
 * folded per address (`lib/repeat_fold.ts`: five a minute, then one with `count`).
 * Memory is bounded: before its handshake a
 * connection takes frames of at most 64 KiB; after it, the bytes of partly received
 * frames of all connections together stay under `maxFrameMemory` (a connection that
 * would go over is closed with `over_budget`), and a closed connection gives its
 * share back. `stop()` closes the listener, lets the
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
 * | `conn.reject`  | `remote`, `from`, `code`, `reason` (`busy`: over `maxConnections` or `maxPerAddress`; `rate_limited`, with `count` and `folded` for a minute's repeats) |
 * | `conn.error`   | `remote`, `reason`, `code?` (failed handshake) |
 * | `conn.warning` | `peerId`, `remote`, `message` (e.g. a stray answer) |
 * | `accept.error` | `error` (the service backs off 100 ms and goes on) |
 *
 * @example Serve PING and fetch an answer
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectPeer } from "./dial.ts";
 * import { startChunkService } from "./service.ts";
 * import { testIdentity } from "./_link_fixtures.ts";
 *
 * const [a, c] = [await testIdentity("a"), await testIdentity("c")];
 * await using service = await startChunkService({
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   hello: () => a.hello,
 *   link: { sign: a.sign },
 *   handler: () => undefined, // PING is answered with PONG anyway
 * });
 * await using conn = await connectPeer(service.addr, { hello: c.hello, link: { sign: c.sign } });
 * assert.equal(conn.remote.peerId, a.peerId);
 * assert.equal((await conn.request({ type: "PING", header: {} })).type, "PONG");
 * ```
 *
 * @module
 */
import { concatBytes } from "../proto/bytes.ts";
import { errorMessage, P2pError, PeerTimeoutError } from "../proto/errors.ts";
import { hostPort, isLoopback } from "../lib/net_addr.ts";
import { RepeatFold } from "../lib/repeat_fold.ts";
import { RequestRate } from "../lib/request_rate.ts";
import { encodeFrame, encodePreamble, FrameBudget } from "../proto/frame.ts";
import type { HelloHeader } from "../proto/messages.ts";
import { PeerConnection, type RequestHandler } from "./connection.ts";
import {
  acceptLink,
  acceptNativeTls,
  createLinkCert,
  type LinkCert,
  type OpenedLink,
} from "./link_tls.ts";

/** How the service's side of each link proves itself. */
export interface ServiceLinkOptions {
  /** Signs with our identity key. */
  sign: (data: Uint8Array) => Promise<Uint8Array>;
  /** The network key; left out: an open network. */
  networkKey?: Uint8Array;
  /** Accept plaintext links from loopback dialers that ask for them (`--insecure-plaintext`). */
  plaintextLoopback?: boolean;
  /** The TLS certificate (default: one made at start, for this service alone). */
  cert?: LinkCert;
}

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
  /** Our side of the link handshake. */
  link: ServiceLinkOptions;
  /** Answers the other side's requests. */
  handler: RequestHandler;
  /** Connections open at once, handshakes included (default 256); more are refused. */
  maxConnections?: number;
  /** Connections open at once from one remote address (default 16); more are refused. */
  maxPerAddress?: number;
  /**
   * New connections from one remote address: `burst` at once, then `perSecond`
   * (default 20, then 2 a second: 20 per 10 s); more are refused with `rate_limited`.
   */
  connectionRate?: ConnectionRate;
  /** The same for loopback addresses (default 2,000, then 100 a second). */
  loopbackConnectionRate?: ConnectionRate;
  /**
   * Bytes that partly received frames may hold, all connections together (default
   * 64 MiB): a connection whose frame would go over it is closed (`over_budget`).
   */
  maxFrameMemory?: number;
  /**
   * Port of the TLS link listener (`Deno.listenTls`, on the chunk listener's address),
   * offered in LINK to dialers that ask: default the chunk port + 1 when that is free,
   * else one the kernel chooses; `false`: none (every link runs node:tls on the chunk
   * port). Not with `plaintextLoopback`.
   */
  tlsPort?: number | false;
  /** Each connection's whole handshake (clear text, TLS, proofs) has this many ms (default 5000). */
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

/** A rate of new connections per address. */
export interface ConnectionRate {
  perSecond: number;
  burst: number;
}

/** Counters of a running chunk service. */
export interface ChunkServiceStats {
  /** Bytes that partly received frames hold now, all connections together. */
  frameMemory: number;
  /** Connections open now, handshakes included. */
  open: number;
  /** Connections accepted under the cap. */
  accepted: number;
  /** Connections refused over `maxConnections`, `maxPerAddress` or the connection rate. */
  rejected: number;
  /** Accepted connections whose handshake failed. */
  failed: number;
}

/** A running chunk service. */
export interface ChunkService extends AsyncDisposable {
  /** The address it listens on, with the port the kernel chose. */
  readonly addr: Deno.NetAddr;
  /** The TLS link port once it listens (the certificate is made first); else undefined. */
  readonly tlsPort: number | undefined;
  /** Resolves once the TLS link listener is up, or has failed to start (then `tlsPort` stays undefined). */
  readonly ready: Promise<void>;
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
const BUSY = refusal("busy", "Peer has too many connections");
const BUSY_ADDRESS = refusal("busy", "Peer has too many connections from your address");
const RATE_LIMITED = refusal(
  "rate_limited",
  "Peer has had too many new connections from your address: retry in a few seconds",
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
  readonly #maxPerAddress: number;
  /** Open connections by remote address (hostname only). */
  readonly #perAddress = new Map<string, number>();
  readonly #rate: RequestRate;
  readonly #loopbackRate: RequestRate;
  /** Folds the `rate_limited` events of a flood. */
  readonly #rateRejects: RepeatFold;
  readonly #cert: Promise<LinkCert>;
  readonly #frameBudget: FrameBudget;
  readonly #listener: Deno.TcpListener;
  #tlsListener: Deno.TlsListener | undefined;
  readonly ready: Promise<void>;
  readonly #connections = new Set<PeerConnection>();
  /** One per accepted connection, settled once it is closed. */
  readonly #tasks = new Set<Promise<void>>();
  /** Aborted when stop() begins: ends the accept loop's back-off. */
  readonly #stopping = new AbortController();
  /** Aborted when stop() ends: closes connections still in their handshake. */
  readonly #closeAll = new AbortController();
  readonly #acceptLoop: Promise<void>;
  #tlsLoop: Promise<void> | undefined;
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
    const perAddress = opts.maxPerAddress ?? 16;
    if (!Number.isInteger(perAddress) || perAddress < 1) {
      throw new RangeError(
        `Cannot start chunk service: maxPerAddress '${perAddress}' is not a positive integer`,
      );
    }
    const rate = checkRate(opts.connectionRate ?? { perSecond: 2, burst: 20 });
    const loopback = checkRate(opts.loopbackConnectionRate ?? { perSecond: 100, burst: 2000 });
    this.#rate = new RequestRate({ rate: rate.perSecond, burst: rate.burst });
    this.#loopbackRate = new RequestRate({ rate: loopback.perSecond, burst: loopback.burst });
    this.#rateRejects = new RepeatFold((s) =>
      this.#emit("conn.reject", {
        from: s.key,
        code: "rate_limited",
        reason: "too many new connections from this address",
        count: s.count,
        folded: true,
      })
    );
    this.#opts = opts;
    this.#maxConnections = max;
    this.#maxPerAddress = perAddress;
    this.#frameBudget = new FrameBudget(opts.maxFrameMemory ?? 64 * 1024 * 1024);
    this.#cert = opts.link.cert ? Promise.resolve(opts.link.cert) : createLinkCert();
    // A failure shows on each connection's handshake.
    this.#cert.catch(noop);
    if (opts.listener) this.#listener = opts.listener;
    else if (opts.hostname !== undefined && opts.port !== undefined) {
      this.#listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
    } else {
      throw new TypeError("Cannot start chunk service: give a listener, or a hostname and a port");
    }
    this.addr = this.#listener.addr;
    this.#acceptLoop = this.#acceptAll(this.#listener);
    const tls = opts.link.plaintextLoopback || opts.tlsPort === false
      ? undefined
      : this.#cert.then((cert) => this.#listenTls(cert, opts.tlsPort as number | undefined));
    this.ready = tls?.then(noop, (err) => {
      this.#emit("accept.error", { error: `TLS link port: ${errorMessage(err)}` });
    }) ?? Promise.resolve();
  }

  get tlsPort(): number | undefined {
    return this.#tlsListener?.addr.port;
  }

  /** Starts the TLS link listener and its accept loop (unless stop() came first). */
  #listenTls(cert: LinkCert, port: number | undefined): void {
    if (this.#stopping.signal.aborted) return;
    const hostname = this.addr.hostname;
    const listen = (p: number) =>
      Deno.listenTls({ hostname, port: p, cert: cert.certPem, key: cert.keyPem, transport: "tcp" });
    let listener: Deno.TlsListener;
    if (port !== undefined) listener = listen(port);
    else if (this.addr.port === 0 || this.addr.port === 65535) listener = listen(0);
    else {
      try {
        listener = listen(this.addr.port + 1);
      } catch (err) {
        if (!(err instanceof Deno.errors.AddrInUse)) throw err;
        listener = listen(0);
      }
    }
    this.#tlsListener = listener;
    this.#tlsLoop = this.#acceptAll(listener);
  }

  get connections(): ReadonlySet<PeerConnection> {
    return this.#connections;
  }

  get stats(): ChunkServiceStats {
    return {
      frameMemory: this.#frameBudget.used,
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
    await this.ready;
    for (const listener of [this.#listener, this.#tlsListener]) {
      try {
        listener?.close();
      } catch { /* already closed */ }
    }
    await this.#acceptLoop;
    await this.#tlsLoop;
    const drained = Promise.all([...this.#connections].map((c) => c.drain()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
    await Promise.race([drained, grace]);
    clearTimeout(timer);
    for (const conn of this.#connections) conn.close("service stopped");
    this.#closeAll.abort(new Error("Service stopped"));
    while (this.#tasks.size > 0) await Promise.all(this.#tasks);
    this.#rateRejects.close();
  }

  async #acceptAll(listener: Deno.TcpListener | Deno.TlsListener): Promise<void> {
    while (!this.#stopping.signal.aborted) {
      let conn: Deno.TcpConn | Deno.TlsConn;
      try {
        conn = await listener.accept();
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

  /** Applies the rate and the caps to a new connection, then serves it. */
  #track(conn: Deno.TcpConn | Deno.TlsConn): void {
    const remote = formatAddr(conn.remoteAddr);
    const host = conn.remoteAddr.hostname;
    const fromHost = this.#perAddress.get(host) ?? 0;
    let task: Promise<void>;
    // Before anything else, and before any TLS work: the rate of new connections.
    const rate = isLoopback(host) ? this.#loopbackRate : this.#rate;
    if (!rate.take(host).ok) {
      this.#rejected++;
      if (this.#rateRejects.note(host).pass) {
        this.#emit("conn.reject", {
          remote,
          from: host,
          code: "rate_limited",
          reason: "too many new connections from this address",
        });
      }
      task = refuse(conn, RATE_LIMITED);
    } else if (this.#open >= this.#maxConnections || fromHost >= this.#maxPerAddress) {
      const overall = this.#open >= this.#maxConnections;
      this.#rejected++;
      this.#emit("conn.reject", {
        remote,
        from: host,
        code: "busy",
        reason: overall ? "too many connections" : "too many connections from this address",
      });
      task = refuse(conn, overall ? BUSY : BUSY_ADDRESS);
    } else {
      this.#open++;
      this.#accepted++;
      this.#perAddress.set(host, fromHost + 1);
      task = this.#serve(conn, remote).finally(() => {
        this.#open--;
        const left = (this.#perAddress.get(host) ?? 1) - 1;
        if (left > 0) this.#perAddress.set(host, left);
        else this.#perAddress.delete(host);
      });
    }
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** Runs one connection from handshake to close; never rejects. */
  async #serve(conn: Deno.TcpConn | Deno.TlsConn, remote: string): Promise<void> {
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
    const { sign, networkKey, plaintextLoopback } = this.#opts.link;
    // One deadline for the clear-text start, TLS and the link handshake together.
    const timeoutMs = this.#opts.handshakeTimeoutMs ?? 5000;
    const started = performance.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(
        new PeerTimeoutError(`Peer did not complete the handshake within '${timeoutMs}' ms`),
      );
    }, timeoutMs);
    try {
      const signal = AbortSignal.any([this.#closeAll.signal, deadline.signal]);
      const cert = await this.#cert;
      let link: OpenedLink | null;
      if (isTls(conn)) link = await acceptNativeTls(conn, cert, signal);
      else {
        link = await acceptLink(conn, { cert, plaintextLoopback, tlsPort: this.tlsPort, signal });
      }
      clearTimeout(timer);
      // The dialer was told our TLS link port and links there.
      if (link === null) return;
      pc = await PeerConnection.open(link.conn, {
        hello,
        link: { role: "acceptor", sign, networkKey, fingerprint: link.fingerprint },
        handler: this.#opts.handler,
        frameBudget: this.#frameBudget,
        handshakeTimeoutMs: Math.max(1, timeoutMs - (performance.now() - started)),
        idleTimeoutMs: this.#opts.idleTimeoutMs,
        maxInFlight: this.#opts.maxInFlight,
        maxFrameLength: this.#opts.maxFrameLength,
        signal: this.#closeAll.signal,
        onWarning: (message) => this.#emit("conn.warning", { peerId: who.peerId, remote, message }),
      });
    } catch (err) {
      // acceptLink() or open() has closed the connection.
      clearTimeout(timer);
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

/**
 * Closes a refused connection; on the chunk port it is first told why (a fresh
 * socket's send buffer takes the 80 bytes at once). The TLS link port says nothing
 * before TLS, which a refused connection gets none of: its dialer falls back to the
 * chunk port and hears why there.
 */
function refuse(conn: Deno.TcpConn | Deno.TlsConn, why: Uint8Array): Promise<void> {
  if (isTls(conn)) {
    closeQuietly(conn);
    return Promise.resolve();
  }
  return conn.write(why).then(noop, noop).finally(() => closeQuietly(conn));
}

function isTls(conn: Deno.TcpConn | Deno.TlsConn): conn is Deno.TlsConn {
  return "handshake" in conn;
}

/** What a refused connection gets: our preamble, then an ERROR with `code`. */
function refusal(code: string, message: string): Uint8Array {
  return concatBytes(
    encodePreamble(),
    encodeFrame({ type: "ERROR", requestId: 0, header: { code, message } }),
  );
}

function checkRate(rate: ConnectionRate): ConnectionRate {
  if (!(rate.perSecond > 0) || !Number.isInteger(rate.burst) || rate.burst < 1) {
    throw new RangeError(
      `Cannot start chunk service: connection rate '${rate.perSecond}' a second, burst ` +
        `'${rate.burst}' must be positive`,
    );
  }
  return rate;
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
