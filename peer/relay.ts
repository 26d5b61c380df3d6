/**
 * The peer's main HTTP server (port 5805): an HTTP/1.1 reverse proxy that relays
 * bytes between raw TCP sockets (`Deno.listen`, `Deno.connect`). A `route`
 * function looks at each request head and names an upstream (the application
 * server, the control API, another peer's main server) or a local answer.
 *
 * Only message heads are parsed (`proto/http1.ts`); bodies go through as they
 * are, `Content-Length` bodies counted and chunked ones tracked to their end
 * without decoding, so a request or answer of any size streams through one buffer
 * per socket. A socket that is not ready for more stops the reading of the other
 * one (backpressure). Upstream connections are kept alive and reused for requests
 * without a body. `Upgrade` requests (WebSocket) are relayed both ways once the
 * upstream answers 101.
 *
 * What changes on the way: hop-by-hop headers (and those named in `Connection`)
 * are dropped, `Host` names the upstream, `X-Forwarded-For`/`-Proto`/`-Host` and
 * `Via` are set, and a `Location`/`Content-Location` pointing at the upstream is
 * rewritten to the client's view. Failures answer with the control API's error
 * JSON, `{ error: { code, message } }`: 400/431/501/505 for a request that cannot
 * be parsed, 502 `bad_gateway`, 504 `gateway_timeout`, 508 `loop_detected`. A
 * failure once the answer has started closes the client connection, so the
 * client sees a truncated answer, never a wrong one.
 *
 * On this repository's machine (2 cores, shared with `wrk` and the app), a 10 KiB
 * answer from an app process went through at 26,000 requests/s, against 15,000 to
 * 17,500 through the `Deno.serve` + `fetch` proxy it replaced and 44,000 through
 * nginx; 1 GiB went down at 95 % and up at 91 % of the direct rate, the relay's
 * RSS peaking at 49 MiB (see `make bench http_proxy`).
 *
 * @example A relay in front of an app server
 * ```ts ignore
 * import { startRelay } from "./relay.ts";
 *
 * await using relay = startRelay({
 *   hostname: "127.0.0.1",
 *   port: 5805,
 *   via: "1.1 p2p-3f2a9c",
 *   route: () => ({ upstream: "http://127.0.0.1:5810" }),
 * });
 * ```
 *
 * @module
 */
import {
  type BodyFraming,
  ChunkedTracker,
  connectionTokens,
  encodeRequestHead,
  encodeResponseHead,
  headEnd,
  type HeaderList,
  headerValue,
  HOP_BY_HOP,
  HttpParseError,
  MAX_HEAD,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  type RequestHead,
  responseFraming,
  type ResponseHead,
} from "../proto/http1.ts";
import { concatBytes } from "../proto/bytes.ts";

/** A request as the route function sees it. */
export interface RelayRequest {
  method: string;
  /** The path, as sent (not decoded). */
  path: string;
  /** The query with its `?`, or `""`. */
  search: string;
  headers: HeaderList;
  /** The client's address. */
  remoteAddr: string;
}

/** Where a request goes: an upstream, or an answer made here. */
export type RelayRoute =
  | {
    /** Base URL of the upstream, e.g. `http://127.0.0.1:5810`; a path in it goes first. */
    upstream: string;
    /** A path prefix removed before forwarding (and put back in `Location`). */
    stripPrefix?: string;
  }
  | { answer: LocalAnswer };

/** An answer made by the relay itself. */
export interface LocalAnswer {
  status: number;
  headers?: Record<string, string>;
  /** A JSON body, if any. */
  json?: unknown;
}

/** Options of {@linkcode startRelay}. */
export interface RelayOptions {
  /** Address to listen on. */
  hostname: string;
  /** Port to listen on (0 picks a free one). */
  port: number;
  /** Where each request goes. A throw answers 502. */
  route(req: RelayRequest): RelayRoute;
  /**
   * This hop's `Via` entry, e.g. `1.1 p2p-3f2a9c`: appended to requests and
   * answers; a request that already lists it is a loop. Random if not given.
   */
  via?: string;
  /** A request whose `Via` lists this many hops or more is a loop (8). */
  maxHops?: number;
  /**
   * How long the upstream may leave the relay waiting, in ms (30 s): for its
   * answer, or to take more of a request body. Not spent on a slow client.
   */
  timeoutMs?: number;
  /** How long a client connection may wait between requests, in ms (60 s). */
  idleTimeoutMs?: number;
  /** How long a client may take to send a request head, in ms (30 s). */
  headTimeoutMs?: number;
  /**
   * How long an upstream connection is kept idle for the next request, in ms (4 s:
   * Node's servers close theirs after 5 s).
   */
  upstreamIdleMs?: number;
  /** Client connections served at once; more are closed at once (1024). */
  maxConnections?: number;
  /** Called with each failure answered with (or cutting short) a 502, 504 or 508. */
  onError?: (err: ProxyError, req: RelayRequest) => void;
}

/** A running relay. */
export interface Relay extends AsyncDisposable {
  /** Where it listens. */
  readonly addr: Deno.NetAddr;
  /** Its base URL, e.g. `http://127.0.0.1:5805`. */
  readonly url: string;
  /** Stops listening, ends idle connections, and ends busy ones after `graceMs` (2 s). */
  close(graceMs?: number): Promise<void>;
  /** What it has done so far, and what it holds now. */
  stats(): RelayStats;
}

/** Counters of a relay, from its start. */
export interface RelayStats {
  /** Client connections open now. */
  connections: number;
  /** Requests read. */
  requests: number;
  /** Requests sent to an upstream. */
  forwarded: number;
  /** Failures reported to `onError` (502, 504, 508, answers cut short). */
  failures: number;
  /** Upstream connections kept idle now. */
  idleUpstream: number;
}

/** A relay failure, with the HTTP status and error code it answers with. */
export class ProxyError extends Error {
  readonly status: 502 | 504 | 508;
  readonly code: "bad_gateway" | "gateway_timeout" | "loop_detected";
  constructor(status: ProxyError["status"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProxyError";
    this.status = status;
    this.code = status === 502
      ? "bad_gateway"
      : status === 504
      ? "gateway_timeout"
      : "loop_detected";
  }
}

/** Bytes read from a socket per call, and the most a buffer holds besides a head. */
const READ_SIZE = 64 * 1024;
/**
 * Answer header fields that the relay drops or rewrites: hop-by-hop ones (but the
 * transfer codings of a body relayed as it is), `Via`, and locations.
 */
const REWRITTEN = new Set(
  [...HOP_BY_HOP, "via", "location", "content-location"].filter((n) => n !== "transfer-encoding"),
);
/** Methods a request of which may be sent again (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Room kept before what a socket sends, for an answer head to go out with it. */
const HEADROOM = 1024;
/** A socket's buffer at first: enough for most heads and small bodies. */
const INITIAL_BUFFER = 16 * 1024;
/** A socket's buffer at most: the headroom, a whole head and one read. */
const MAX_BUFFER = HEADROOM + MAX_HEAD + READ_SIZE;
/** Idle upstream connections kept per upstream. */
const MAX_IDLE = 256;
/** How long the relay reads and drops a request body its upstream did not take. */
const LINGER_MS = 5_000;
/** How long an idle upstream connection is kept by default. */
const IDLE_REUSE_MS = 4_000;

const REASONS: Record<number, string> = {
  200: "OK",
  204: "No Content",
  308: "Permanent Redirect",
  400: "Bad Request",
  404: "Not Found",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  508: "Loop Detected",
};

const encoder = new TextEncoder();

/**
 * The bytes a socket has sent and not yet been consumed, in one buffer. At most
 * one read is pending at a time; a pending read appends after the unconsumed
 * bytes, so consuming while it runs is safe.
 */
class Inbox {
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
  constructor(readonly conn: Deno.Conn) {}

  get length(): number {
    return this.end - this.start;
  }

  /** The unconsumed bytes (a view: valid until the next read). */
  bytes(max = Infinity): Uint8Array {
    return this.buf.subarray(this.start, this.start + Math.min(max, this.length));
  }

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

/** Writes all of `bytes`. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** An upstream connection, with what it has sent. */
interface Upstream {
  conn: Deno.TcpConn;
  inbox: Inbox;
  key: string;
  reused: boolean;
  idleSince: number;
  /** Closes it once it has been idle too long. */
  expiry?: Deadline;
  /** The time limit on the request in progress, which calls `onTimeout`. */
  timeout?: Deadline;
  onTimeout?: () => void;
}

/** An upstream base URL, parsed once. */
interface Base {
  hostname: string;
  port: number;
  /** `host:port` as the Host header names it. */
  host: string;
  /** What its idle connections are kept under. */
  key: string;
  origin: URL;
  /** The path in the base URL, without a trailing slash. */
  path: string;
}

/**
 * Starts a relay: it listens once this returns. Throws `RangeError`/`TypeError`
 * for bad options, and `Deno.errors.AddrInUse` when the port is taken.
 */
export function startRelay(opts: RelayOptions): Relay {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  for (
    const [what, v] of [
      ["timeout", timeoutMs],
      ["idle timeout", opts.idleTimeoutMs ?? 60_000],
      ["head timeout", opts.headTimeoutMs ?? 30_000],
      ["upstream idle time", opts.upstreamIdleMs ?? IDLE_REUSE_MS],
    ] as const
  ) {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new RangeError(`Relay ${what} '${v}' must be a positive number of ms`);
    }
  }
  const maxHops = opts.maxHops ?? 8;
  if (!Number.isInteger(maxHops) || maxHops < 1) {
    throw new RangeError(`Relay max hops '${maxHops}' must be a positive integer`);
  }
  const via = opts.via ?? `1.1 p2p-${crypto.randomUUID().slice(0, 8)}`;
  if (!/^[^\s,()]+ [^\s,()]+$/.test(via)) {
    throw new TypeError(`Relay Via entry '${via}' must be '<protocol> <name>', e.g. '1.1 p2p-3f'`);
  }
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port });
  return new RelayServer(listener, opts, via, maxHops, timeoutMs);
}

class RelayServer implements Relay {
  readonly addr: Deno.NetAddr;
  readonly url: string;
  #listener: Deno.TcpListener;
  #opts: RelayOptions;
  #via: string;
  #viaKey: string;
  #maxHops: number;
  #timeoutMs: number;
  #idleMs: number;
  #headMs: number;
  #upstreamIdleMs: number;
  #maxConns: number;
  /** Client connections: whether each is between requests, and its upstream. */
  #clients = new Map<Deno.Conn, ClientState>();
  #idle = new Map<string, Upstream[]>();
  #bases = new Map<string, Base>();
  #accepting: Promise<void>;
  #deadlines: Deadlines;
  /** The end of an answer head passed on as it came: this hop's Via (and close). */
  #viaEnd: Uint8Array;
  #viaCloseEnd: Uint8Array;
  #closing: Promise<void> | undefined;
  #drained = Promise.withResolvers<void>();
  #counts = { requests: 0, forwarded: 0, failures: 0 };

  constructor(
    listener: Deno.TcpListener,
    opts: RelayOptions,
    via: string,
    maxHops: number,
    timeoutMs: number,
  ) {
    this.#listener = listener;
    this.#opts = opts;
    this.#via = via;
    this.#viaKey = viaEntryKey(via);
    this.#viaEnd = encoder.encode(`via: ${via}\r\n\r\n`);
    this.#viaCloseEnd = encoder.encode(`via: ${via}\r\nconnection: close\r\n\r\n`);
    this.#maxHops = maxHops;
    this.#timeoutMs = timeoutMs;
    this.#idleMs = opts.idleTimeoutMs ?? 60_000;
    this.#headMs = opts.headTimeoutMs ?? 30_000;
    this.#upstreamIdleMs = opts.upstreamIdleMs ?? IDLE_REUSE_MS;
    this.#maxConns = opts.maxConnections ?? 1024;
    const shortest = Math.min(timeoutMs, this.#idleMs, this.#headMs, this.#upstreamIdleMs);
    this.#deadlines = new Deadlines(Math.min(250, Math.max(5, shortest / 10)));
    this.addr = listener.addr;
    const h = this.addr.hostname;
    this.url = `http://${h.includes(":") ? `[${h}]` : h}:${this.addr.port}`;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        if (this.#clients.size >= this.#maxConns) {
          closeQuietly(conn);
          continue;
        }
        conn.setNoDelay(true);
        const state: ClientState = { idle: true };
        this.#clients.set(conn, state);
        this.#serve(conn, state).finally(() => {
          this.#clients.delete(conn);
          closeQuietly(conn);
          if (this.#closing && this.#clients.size === 0) this.#drained.resolve();
        });
      }
    } catch {
      // The listener was closed.
    }
  }

  close(graceMs = 2_000): Promise<void> {
    return this.#closing ??= (async () => {
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      await this.#accepting;
      for (const [conn, state] of this.#clients) if (state.idle) closeQuietly(conn);
      for (const list of this.#idle.values()) for (const u of list) closeQuietly(u.conn);
      this.#idle.clear();
      this.#deadlines.stop();
      if (this.#clients.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          this.#drained.promise,
          new Promise<void>((r) => timer = setTimeout(r, graceMs)),
        ]);
        clearTimeout(timer);
        for (const [conn, state] of this.#clients) {
          closeQuietly(conn);
          if (state.upstream) closeQuietly(state.upstream);
        }
        if (this.#clients.size > 0) await this.#drained.promise;
      }
    })();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  stats(): RelayStats {
    let idleUpstream = 0;
    for (const list of this.#idle.values()) idleUpstream += list.length;
    return { connections: this.#clients.size, ...this.#counts, idleUpstream };
  }

  /** Reports a failure to `onError`, and counts it. */
  #failed(err: ProxyError, req: RelayRequest): void {
    this.#counts.failures++;
    this.#opts.onError?.(err, req);
  }

  /** Serves one client connection: request after request, until either side closes. */
  async #serve(conn: Deno.Conn, state: ClientState): Promise<void> {
    const remoteAddr = (conn.remoteAddr as Deno.NetAddr).hostname;
    const inbox = new Inbox(conn);
    /** The time limit on the next request head: the connection ends. */
    const deadline = this.#deadlines.make(() => closeQuietly(conn));
    for (let first = true;; first = false) {
      state.idle = true;
      if (this.#closing) return;
      let head: RequestHead | undefined;
      try {
        deadline.arm(first ? this.#headMs : this.#idleMs);
        head = await readHead(inbox, parseRequestHead, tooLargeRequestHead);
      } catch (err) {
        if (err instanceof HttpParseError) {
          await this.#answer(conn, err.status, { code: err.code, message: err.message }, true)
            .catch(() => {});
        }
        return;
      } finally {
        deadline.disarm();
      }
      if (!head) return;
      state.idle = false;
      this.#counts.requests++;
      const keep = await this.#exchange(conn, inbox, head, remoteAddr, state).catch(() => false);
      if (!keep) return;
    }
  }

  /** Writes a JSON (or empty) answer made here. */
  async #answer(
    conn: Deno.Conn,
    status: number,
    error: { code: string; message: string } | undefined,
    close: boolean,
    extra: Record<string, string> = {},
    json?: unknown,
  ): Promise<void> {
    const body = error !== undefined
      ? encoder.encode(JSON.stringify({ error }))
      : json !== undefined
      ? encoder.encode(JSON.stringify(json))
      : new Uint8Array();
    const headers: HeaderList = Object.entries(extra);
    if (body.byteLength > 0) headers.push(["content-type", "application/json"]);
    headers.push(["content-length", String(body.byteLength)]);
    if (error) headers.push(["cache-control", "no-store"]);
    if (close) headers.push(["connection", "close"]);
    const head = encodeResponseHead({
      version: "HTTP/1.1",
      status,
      reason: REASONS[status] ?? "",
      headers,
    });
    await writeAll(conn, body.byteLength > 0 ? concatBytes(head, body) : head);
  }

  /**
   * One request and its answer. Resolves with whether the client connection can
   * carry another request.
   */
  async #exchange(
    client: Deno.Conn,
    inbox: Inbox,
    head: RequestHead,
    remoteAddr: string,
    state: ClientState,
  ): Promise<boolean> {
    const [path, search] = splitTarget(head.target);
    const req: RelayRequest = {
      method: head.method,
      path,
      search,
      headers: head.headers,
      remoteAddr,
    };
    const what = `${head.method} ${path}`;
    const tokens = connectionTokens(head.headers);
    // HTTP/1.0 clients get one answer per connection.
    const keep = head.version === "HTTP/1.1" && !tokens.has("close");

    let framing: BodyFraming;
    try {
      framing = requestFraming(head);
      if (path === "") {
        throw new HttpParseError(400, "bad_request", `Request target '${head.target}' has no path`);
      }
    } catch (err) {
      const e = err as HttpParseError;
      await this.#answer(client, e.status ?? 400, { code: e.code, message: e.message }, true);
      return false;
    }
    // An answer made here leaves any request body unread: the connection ends.
    const keepAfterAnswer = keep && framing.kind === "none";
    const fail = async (err: ProxyError) => {
      this.#failed(err, req);
      await this.#answer(
        client,
        err.status,
        { code: err.code, message: err.message },
        !keepAfterAnswer,
      );
      return keepAfterAnswer;
    };

    const hops = viaEntries(headerValue(head.headers, "via"));
    if (hops.some((h) => viaEntryKey(h) === this.#viaKey)) {
      return await fail(
        new ProxyError(
          508,
          `Cannot proxy '${what}': this hop '${this.#via}' is already in its Via`,
        ),
      );
    }
    if (hops.length >= this.#maxHops) {
      return await fail(
        new ProxyError(
          508,
          `Cannot proxy '${what}': it went through ${hops.length} proxies, the limit is ${this.#maxHops}`,
        ),
      );
    }

    let route: RelayRoute;
    let base: Base;
    try {
      route = this.#opts.route(req);
      if ("answer" in route) {
        const a = route.answer;
        await this.#answer(client, a.status, undefined, !keepAfterAnswer, a.headers, a.json);
        return keepAfterAnswer;
      }
      base = this.#base(route.upstream);
    } catch (err) {
      return await fail(new ProxyError(502, `Cannot proxy '${what}': ${(err as Error).message}`));
    }

    const prefix = route.stripPrefix?.replace(/\/+$/, "") ?? "";
    let upPath = path;
    if (prefix && (path === prefix || path.startsWith(prefix + "/"))) {
      upPath = path.slice(prefix.length) || "/";
    }
    const upgrade = tokens.has("upgrade") ? headerValue(head.headers, "upgrade") : undefined;
    const proto = "http";
    const host = headerValue(head.headers, "host") ?? this.url.slice("http://".length);
    const out: HeaderList = [["host", base.host]];
    for (const [name, value] of head.headers) {
      const n = name.toLowerCase();
      if (HOP_BY_HOP.has(n) || tokens.has(n) || n === "host" || n === "via") continue;
      if (n === "x-forwarded-for" || n === "x-forwarded-proto" || n === "x-forwarded-host") {
        continue;
      }
      out.push([name, value]);
    }
    const xff = headerValue(head.headers, "x-forwarded-for");
    out.push(["x-forwarded-for", xff ? `${xff}, ${remoteAddr}` : remoteAddr]);
    out.push(["x-forwarded-proto", proto], ["x-forwarded-host", host]);
    out.push(["via", [...hops, this.#via].join(", ")]);
    // The body goes as it is, so its codings do too (`gzip, chunked`, say).
    if (framing.kind === "chunked") {
      out.push(["transfer-encoding", headerValue(head.headers, "transfer-encoding")!]);
    }
    if (upgrade !== undefined) out.push(["connection", "upgrade"], ["upgrade", upgrade]);
    const upHead = encodeRequestHead({
      method: head.method,
      target: base.path + upPath + search,
      version: head.version,
      headers: out,
    });

    const upstreamName = base.origin.origin + base.path;
    // A reused connection the upstream closed meanwhile fails before any byte of
    // the answer; the request then goes again on a new one. So only requests that
    // may be sent twice (idempotent, without a body) take an idle connection.
    const reusable = framing.kind === "none" && upgrade === undefined &&
      head.version === "HTTP/1.1" && IDEMPOTENT.has(head.method);
    for (let attempt = 0;; attempt++) {
      let up: Upstream;
      try {
        up = (reusable && attempt === 0 && this.#takeIdle(base)) || await this.#dial(base);
      } catch (err) {
        return await fail(
          new ProxyError(
            502,
            `Cannot proxy '${what}': upstream ${upstreamName} is unreachable: ${
              (err as Error).message
            }`,
            { cause: err },
          ),
        );
      }
      state.upstream = up.conn;
      if (attempt === 0) this.#counts.forwarded++;
      const result = await this.#forward({
        client,
        inbox,
        up,
        upHead,
        framing,
        method: head.method,
        what,
        upstreamName,
        base,
        prefix,
        host,
        proto,
        keep,
        upgrade: upgrade !== undefined,
        http10: head.version === "HTTP/1.0",
        req,
      });
      state.upstream = undefined;
      if (result === "retry" && up.reused && attempt === 0) continue;
      if (result === "retry") {
        return await fail(
          new ProxyError(
            502,
            `Cannot proxy '${what}': upstream ${upstreamName} closed the connection`,
          ),
        );
      }
      if (result instanceof ProxyError) return await fail(result);
      return result;
    }
  }

  /**
   * Sends the request to `up` and relays the answer. Resolves with whether the
   * client connection can go on, a ProxyError to answer with (nothing was sent to
   * the client yet), or `retry` when the upstream closed before answering and no
   * request body was sent.
   */
  async #forward(x: {
    client: Deno.Conn;
    inbox: Inbox;
    up: Upstream;
    upHead: Uint8Array;
    framing: BodyFraming;
    method: string;
    what: string;
    upstreamName: string;
    base: Base;
    prefix: string;
    host: string;
    proto: string;
    keep: boolean;
    upgrade: boolean;
    http10: boolean;
    req: RelayRequest;
  }): Promise<boolean | ProxyError | "retry"> {
    const { client, inbox, up, framing, what, upstreamName } = x;
    let reason: ProxyError | undefined;
    /** The upstream timeout: on expiry the upstream connection is cut. */
    up.onTimeout = () => {
      reason ??= new ProxyError(
        504,
        `Cannot proxy '${what}': upstream ${upstreamName} did not answer within ${this.#timeoutMs} ms`,
      );
      closeQuietly(up.conn);
    };
    const deadline = up.timeout ??= this.#deadlines.make(() => up.onTimeout?.());
    const arm = () => deadline.arm(this.#timeoutMs);
    const disarm = () => deadline.disarm();
    const clientGone = () => {
      reason ??= new ProxyError(502, `Cannot proxy '${what}': the client went away`);
      closeQuietly(up.conn);
    };
    let bodyDone = framing.kind === "none";
    let sentBody = false;
    let pump: Promise<void> | undefined;
    let answered = false;
    let released = false;
    try {
      arm();
      try {
        await writeAll(up.conn, x.upHead);
      } catch (err) {
        if (up.reused) return "retry";
        throw err;
      }
      if (framing.kind === "none") {
        // Notice the client leaving while the answer is awaited.
        inbox.onEnd = clientGone;
        inbox.watch();
      } else {
        pump = this.#pumpRequest(inbox, up.conn, framing, arm, disarm).then(
          () => {
            bodyDone = true;
            if (answered) return;
            arm();
            inbox.onEnd = clientGone;
            inbox.watch();
          },
          (err) => {
            if (err === CLIENT_GONE) clientGone();
            else closeQuietly(up.conn);
          },
        );
        sentBody = true;
      }

      // The answer's head; interim 1xx answers (but 101) are passed on.
      let res: ResponseHead;
      /** The head as the upstream sent it: valid until the next read. */
      let raw: Uint8Array = new Uint8Array();
      const parse = (bytes: Uint8Array) => {
        raw = bytes;
        return parseResponseHead(bytes);
      };
      for (;;) {
        const got = await readHead(
          up.inbox,
          parse,
          () => new HttpParseError(502, "bad_upstream_head", "Upstream answer head is too large"),
        );
        if (got === undefined) {
          if (reason) return reason;
          if (!sentBody && up.inbox.length === 0) return "retry";
          return new ProxyError(
            502,
            `Cannot proxy '${what}': upstream ${upstreamName} closed the connection before answering`,
          );
        }
        if (got.status >= 100 && got.status < 200 && got.status !== 101) {
          if (!x.http10) await writeAll(client, encodeResponseHead(got));
          continue;
        }
        res = got;
        break;
      }
      let resFraming: BodyFraming = { kind: "none" };
      if (res.status !== 101) {
        try {
          resFraming = responseFraming(res, x.method);
        } catch (err) {
          return new ProxyError(502, `Cannot proxy '${what}': ${(err as Error).message}`);
        }
      }
      // The client connection goes on only if both bodies end where they should.
      let keep = x.keep && resFraming.kind !== "close";
      const resHead = res.status === 101 ? undefined : this.#answerHeadBytes(res, raw, x, keep);
      // A small body is read whole first, to go out in one write with the head; the
      // upstream timeout runs meanwhile, and nothing has reached the client yet.
      if (resFraming.kind === "length" && resFraming.length <= READ_SIZE) {
        while (up.inbox.length < resFraming.length) {
          if (await up.inbox.fill()) continue;
          return reason ?? new ProxyError(
            502,
            `Cannot proxy '${what}': upstream ${upstreamName} broke off its answer`,
          );
        }
      }
      disarm();
      answered = true;
      // A client that goes away while the answer streams stops the upstream.
      inbox.onEnd = () => closeQuietly(up.conn);
      if (inbox.eof) closeQuietly(up.conn);
      // While the request body still goes up, its pump reads the client (and a read
      // now could move bytes the pump is writing).
      else if (!pump || bodyDone) inbox.watch();

      if (res.status === 101) {
        if (!x.upgrade) {
          return new ProxyError(502, `Cannot proxy '${what}': upstream switched protocols unasked`);
        }
        await writeAll(client, encodeResponseHead(this.#answerHead(res, x, "upgrade")));
        await this.#tunnel(inbox, client, up);
        return false;
      }

      const complete = await this.#relayAnswer(up.inbox, client, inbox, resHead!, resFraming, x);
      if (!complete) return false;
      if (pump && !bodyDone) {
        // The upstream answered before taking the whole body.
        keep = false;
      }
      const upKeeps = res.version === "HTTP/1.1" && !connectionTokens(res.headers).has("close");
      if (upKeeps && resFraming.kind !== "close" && bodyDone && up.inbox.length === 0 && !reason) {
        this.#release(up);
        released = true;
      }
      return keep;
    } catch (err) {
      if (reason) return reason;
      if (!answered) {
        return new ProxyError(
          502,
          `Cannot proxy '${what}': upstream ${upstreamName} failed: ${(err as Error).message}`,
          { cause: err },
        );
      }
      return false;
    } finally {
      disarm();
      inbox.onEnd = undefined;
      if (!released) closeQuietly(up.conn);
      // The upstream answered before it took the whole body (a 413, say): the
      // client's connection ends, once the client has had time to read the answer.
      if (pump && !bodyDone) {
        if (answered && !reason) await this.#linger(client, inbox, pump);
        else closeQuietly(client);
      }
      if (pump) await pump;
    }
  }

  /**
   * The answer's head as the client gets it, in bytes. When nothing in it changes
   * but the added `Via` (and `Connection: close`), that is the upstream's head as it
   * came, `raw`, with them put at its end: no need to write it anew.
   */
  #answerHeadBytes(
    res: ResponseHead,
    raw: Uint8Array,
    x: { base: Base; prefix: string; host: string; proto: string },
    keep: boolean,
  ): Uint8Array {
    const asIs = res.version === "HTTP/1.1" && raw[0] === 0x48 /* H */ &&
      !res.headers.some(([name]) => REWRITTEN.has(name.toLowerCase()));
    if (!asIs) return encodeResponseHead(this.#answerHead(res, x, keep ? "keep" : "close"));
    return concatBytes(raw.subarray(0, raw.length - 2), keep ? this.#viaEnd : this.#viaCloseEnd);
  }

  /** The answer's head as the client gets it. */
  #answerHead(
    res: ResponseHead,
    x: { base: Base; prefix: string; host: string; proto: string },
    connection: "keep" | "close" | "upgrade",
  ): ResponseHead {
    const tokens = connectionTokens(res.headers);
    const headers: HeaderList = [];
    let upstreamVia: string | undefined;
    for (const [name, value] of res.headers) {
      const n = name.toLowerCase();
      if (n === "via") {
        upstreamVia = upstreamVia ? `${upstreamVia}, ${value}` : value;
        continue;
      }
      // The body goes as it is, so its transfer codings do too.
      const relayed = n === "transfer-encoding" && connection !== "upgrade";
      if (!relayed && (HOP_BY_HOP.has(n) || tokens.has(n))) continue;
      if (n === "location" || n === "content-location") {
        headers.push([name, mapLocation(value, x.base, `${x.proto}://${x.host}`, x.prefix)]);
        continue;
      }
      headers.push([name, value]);
    }
    headers.push(["via", upstreamVia ? `${upstreamVia}, ${this.#via}` : this.#via]);
    if (connection === "upgrade") {
      headers.push(["connection", "upgrade"]);
      const upgrade = headerValue(res.headers, "upgrade");
      if (upgrade !== undefined) headers.push(["upgrade", upgrade]);
    } else if (connection === "close") {
      headers.push(["connection", "close"]);
    }
    return { version: "HTTP/1.1", status: res.status, reason: res.reason, headers };
  }

  /**
   * Copies the client's request body to the upstream. Rejects with CLIENT_GONE if
   * the client ends before the body does.
   */
  async #pumpRequest(
    inbox: Inbox,
    up: Deno.Conn,
    framing: BodyFraming,
    arm: () => void,
    disarm: () => void,
  ): Promise<void> {
    const write = async (bytes: Uint8Array) => {
      arm();
      await writeAll(up, bytes);
      disarm();
    };
    if (!await copyBody(inbox, framing, write)) throw CLIENT_GONE;
  }

  /**
   * Ends a client connection whose request body is still coming after its answer:
   * it is told the answer is whole (`closeWrite`), and what it still sends is read
   * and dropped for up to {@linkcode LINGER_MS}. Closing at once, with its bytes
   * unread, would reset the connection, and the client could lose the answer
   * before it has read it (nginx's lingering close does the same).
   */
  async #linger(client: Deno.Conn, inbox: Inbox, pump: Promise<void>): Promise<void> {
    const deadline = this.#deadlines.make(() => closeQuietly(client));
    deadline.arm(LINGER_MS);
    try {
      await client.closeWrite().catch(() => {});
      // The upstream is closed: the pump stops at its next write, or when the
      // client ends or the deadline closes it.
      await pump;
      while (!inbox.eof) {
        inbox.consume(inbox.length);
        if (!await inbox.fill()) break;
      }
    } finally {
      deadline.disarm();
    }
  }

  /**
   * Writes the answer head and copies the answer body after it, the head and the
   * first part in one write where it can. Resolves with whether the body ended
   * where its framing says; a broken answer ends the client connection. An answer
   * that ends early because the client left (`clientInbox` ended, which cuts the
   * upstream) is not the upstream's failure.
   */
  async #relayAnswer(
    inbox: Inbox,
    client: Deno.Conn,
    clientInbox: Inbox,
    head: Uint8Array,
    framing: BodyFraming,
    x: { what: string; upstreamName: string; req: RelayRequest },
  ): Promise<boolean> {
    // The head goes before the body bytes already read, to leave in one write.
    const lead = inbox.prepend(head) ? head.byteLength : 0;
    const write = (bytes: Uint8Array) => writeAll(client, bytes);
    const broken = () => {
      if (clientInbox.eof) return false;
      this.#failed(
        new ProxyError(502, `Upstream ${x.upstreamName} broke off the answer to '${x.what}'`),
        x.req,
      );
      return false;
    };
    try {
      if (lead === 0) await write(head);
      return await copyBody(inbox, framing, write, lead) || broken();
    } catch (err) {
      // A malformed chunked answer: cut short, as a broken one.
      if (err instanceof HttpParseError) return broken();
      // The client went away.
      return false;
    }
  }

  /** Relays bytes both ways after a 101, until either side ends. */
  async #tunnel(clientInbox: Inbox, client: Deno.Conn, up: Upstream): Promise<void> {
    const copy = async (from: Inbox, to: Deno.Conn) => {
      await copyBody(from, { kind: "close" }, (b) => writeAll(to, b)).catch(() => {});
      closeQuietly(to);
      closeQuietly(from.conn);
    };
    await Promise.all([copy(clientInbox, up.conn), copy(up.inbox, client)]);
  }

  #base(upstream: string): Base {
    let base = this.#bases.get(upstream);
    if (base) return base;
    let url: URL;
    try {
      url = new URL(upstream);
    } catch {
      throw new TypeError(`upstream '${upstream}' is not a URL`);
    }
    if (url.protocol !== "http:") throw new TypeError(`upstream '${upstream}' must be http://`);
    base = {
      hostname: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port || 80),
      host: url.host,
      key: `${url.hostname}:${url.port || 80}`,
      origin: new URL(url.origin),
      path: url.pathname.replace(/\/+$/, ""),
    };
    if (this.#bases.size > 1024) this.#bases.clear();
    this.#bases.set(upstream, base);
    return base;
  }

  /** An idle connection to `base` that may still be open, if there is one. */
  #takeIdle(base: Base): Upstream | undefined {
    const list = this.#idle.get(base.key);
    const now = performance.now();
    while (list && list.length > 0) {
      const u = list.pop()!;
      u.expiry?.disarm();
      if (!u.inbox.eof && now - u.idleSince < this.#upstreamIdleMs) {
        u.reused = true;
        return u;
      }
      closeQuietly(u.conn);
    }
    return undefined;
  }

  /** A new connection to `base`. */
  async #dial(base: Base): Promise<Upstream> {
    const conn = await Deno.connect({ hostname: base.hostname, port: base.port });
    conn.setNoDelay(true);
    return { conn, inbox: new Inbox(conn), key: base.key, reused: false, idleSince: 0 };
  }

  #release(up: Upstream): void {
    if (this.#closing) return closeQuietly(up.conn);
    let list = this.#idle.get(up.key);
    if (!list) this.#idle.set(up.key, list = []);
    if (list.length >= MAX_IDLE) return closeQuietly(up.conn);
    up.idleSince = performance.now();
    list.push(up);
    up.expiry ??= this.#deadlines.make(() => {
      const idle = this.#idle.get(up.key);
      const at = idle?.indexOf(up) ?? -1;
      if (at >= 0) idle!.splice(at, 1);
      closeQuietly(up.conn);
    });
    up.expiry.arm(this.#upstreamIdleMs);
  }
}

/**
 * Copies one body, as `framing` delimits it, from `inbox` with `write`. The first
 * `lead` bytes of the inbox (an answer head put there) go out with the first part
 * of the body. Resolves with false if the socket ended before the body did (a body
 * delimited by the end of the connection is then complete).
 */
async function copyBody(
  inbox: Inbox,
  framing: BodyFraming,
  write: (bytes: Uint8Array) => Promise<void>,
  lead = 0,
): Promise<boolean> {
  const send = async (n: number) => {
    await write(inbox.bytes(lead + n));
    inbox.consume(lead + n);
    lead = 0;
  };
  const tracker = framing.kind === "chunked" ? new ChunkedTracker() : undefined;
  let left = framing.kind === "length" ? framing.length : framing.kind === "none" ? 0 : Infinity;
  // What precedes the body does not wait for it (a stream may be slow).
  if (lead > 0 && inbox.length === lead) await send(0);
  while (tracker ? !tracker.done : left > 0) {
    if (inbox.length === lead && !await inbox.fill()) {
      if (lead > 0) await send(0);
      return framing.kind === "close";
    }
    const body = inbox.bytes().subarray(lead);
    const n = tracker ? tracker.push(body) : Math.min(left, body.byteLength);
    await send(n);
    left -= n;
  }
  if (lead > 0) await send(0);
  return true;
}

/**
 * Reads one message head with `parse`; undefined when the socket ends first, and
 * `tooLarge()` thrown for a head over {@linkcode MAX_HEAD}.
 */
async function readHead<T>(
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

/** A time limit from {@linkcode Deadlines}: armed, disarmed, armed again. */
interface Deadline {
  arm(ms: number): void;
  disarm(): void;
}

/**
 * Time limits checked by one interval timer while any is armed, to the nearest
 * `tickMs`: per request, this is cheaper than a timer of its own for each limit.
 */
class Deadlines {
  #armed = new Map<() => void, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  constructor(readonly tickMs: number) {}

  /** A deadline that calls `fire` once it passes (and is then disarmed). */
  make(fire: () => void): Deadline {
    return {
      arm: (ms) => {
        if (this.#stopped) return;
        this.#armed.set(fire, performance.now() + ms);
        this.#timer ??= setInterval(() => this.#tick(), this.tickMs);
      },
      disarm: () => {
        this.#armed.delete(fire);
      },
    };
  }

  /** Disarms every deadline and ends the timer; later arms are ignored. */
  stop(): void {
    this.#stopped = true;
    this.#armed.clear();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(): void {
    const now = performance.now();
    for (const [fire, at] of this.#armed) {
      if (at > now) continue;
      this.#armed.delete(fire);
      fire();
    }
    if (this.#armed.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

function tooLargeRequestHead(): HttpParseError {
  return new HttpParseError(
    431,
    "head_too_large",
    `Request head is over the limit of '${MAX_HEAD}' bytes`,
  );
}

/** What the relay knows of one client connection. */
interface ClientState {
  /** Between requests. */
  idle: boolean;
  /** The upstream connection of the request in progress. */
  upstream?: Deno.Conn;
}

/** Thrown by the request pump when the client ends before its body does. */
const CLIENT_GONE = new Error("The client went away");

/** A request target as path and query; an absolute-form target loses its origin. */
function splitTarget(target: string): [string, string] {
  let t = target;
  if (!t.startsWith("/")) {
    try {
      const u = new URL(t);
      t = u.pathname + u.search;
    } catch {
      return ["", ""];
    }
  }
  const q = t.indexOf("?");
  return q < 0 ? [t, ""] : [t.slice(0, q), t.slice(q)];
}

/** The entries of a `Via` header, comments removed. */
function viaEntries(value: string | undefined): string[] {
  if (!value) return [];
  return value.replace(/\([^)]*\)/g, "").split(",").map((e) => e.trim()).filter((e) =>
    e.length > 0
  );
}

/** What identifies a `Via` entry: its protocol and name, lower case. */
function viaEntryKey(entry: string): string {
  return entry.trim().split(/\s+/).slice(0, 2).join(" ").toLowerCase();
}

/**
 * Maps a `Location` on the upstream to the client's view: an absolute URL at the
 * upstream's origin to `publicOrigin`, and a path from the root (absolute or not)
 * from under the base path to under `prefix`. Leaves any other as it is.
 */
function mapLocation(value: string, base: Base, publicOrigin: string, prefix: string): string {
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith("//");
  if (!absolute && !value.startsWith("/")) return value;
  let target: URL;
  try {
    target = new URL(value, base.origin);
  } catch {
    return value;
  }
  if (target.origin !== base.origin.origin) return value;
  let path = target.pathname;
  if (base.path && (path === base.path || path.startsWith(base.path + "/"))) {
    path = path.slice(base.path.length) || "/";
  }
  if (!absolute && !base.path && !prefix) return value;
  return (absolute ? publicOrigin : "") + prefix + path + target.search + target.hash;
}
