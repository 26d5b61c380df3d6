/**
 * An HTTP/1.1 reverse proxy that relays bytes between raw TCP sockets
 * (`Deno.listen`, `Deno.connect`): the accept loop, client connections kept alive
 * request after request, the dispatch of each request (parse checks, loop
 * detection, the route function, local answers, the upstream pool and a retry on
 * a closed idle connection), counters and a graceful close. Each request that
 * goes upstream is an `Exchange` (`exchange.ts`).
 *
 * Only message heads are parsed (`head.ts`); bodies go through as they are,
 * `Content-Length` bodies counted and chunked ones tracked to their end without
 * decoding, so a request or answer of any size streams through one buffer per
 * socket. Failures answer with the JSON error body `{ error: { code, message } }`:
 * 400/431/505 for a request that cannot be parsed, 502 `bad_gateway`, 504
 * `gateway_timeout`, 508 `loop_detected`. A failure once the answer has started
 * closes the client connection, so the client sees a truncated answer, never a
 * wrong one.
 *
 * Limits per client address: at most `maxConnectionsPerAddress` connections (one
 * more is answered 429 `too_many_connections` and closed), and with
 * `requestsPerSecond` a token bucket of requests (`lib/request_rate.ts`): a request
 * over it is answered 429 `rate_limited` with `Retry-After`, and a connection whose
 * request had no body goes on serving. Both refusals are told to `onRefused`.
 *
 * @module
 */
import { httpUrl } from "../net_addr.ts";
import { RequestRate } from "../request_rate.ts";
import { Deadlines } from "./deadlines.ts";
import { HttpParseError, ProxyError } from "./errors.ts";
import { Exchange, type ExchangeContext } from "./exchange.ts";
import { type BodyFraming, requestFraming } from "./framing.ts";
import { headerValue, MAX_HEAD, parseRequestHead, type RequestHead } from "./head.ts";
import { closeQuietly, Inbox, readHead, writeAll } from "./inbox.ts";
import { type Upstream, UpstreamPool } from "./pool.ts";
import {
  type Hop,
  hopOf,
  localAnswer,
  loopError,
  parseUpstream,
  splitTarget,
  type UpstreamBase,
  viaEntries,
} from "./rewrite.ts";
import type {
  Relay,
  RelayOptions,
  RelayRefusal,
  RelayRequest,
  RelayRoute,
  RelayStats,
} from "./types.ts";

/** Methods a request of which may be sent again (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** How long an idle upstream connection is kept by default. */
const IDLE_REUSE_MS = 4_000;

/**
 * Starts a relay: it listens once this returns. Throws `RangeError`/`TypeError`
 * for bad options, and `Deno.errors.AddrInUse` when the port is taken.
 */
export function startRelay(opts: RelayOptions): Relay {
  for (
    const [what, v] of [
      ["timeout", opts.timeoutMs ?? 30_000],
      ["idle timeout", opts.idleTimeoutMs ?? 60_000],
      ["head timeout", opts.headTimeoutMs ?? 30_000],
      ["send timeout", opts.sendTimeoutMs ?? 30_000],
      ["upstream idle time", opts.upstreamIdleMs ?? IDLE_REUSE_MS],
    ] as const
  ) {
    if (!(v > 0) || !Number.isFinite(v)) {
      throw new RangeError(`Relay ${what} '${v}' must be a positive number of ms`);
    }
  }
  const rate = opts.requestsPerSecond ?? 0;
  if (!(rate >= 0) || !Number.isFinite(rate)) {
    throw new RangeError(`Relay request rate '${rate}' must be a number of requests a second`);
  }
  const maxHops = opts.maxHops ?? 8;
  if (!Number.isInteger(maxHops) || maxHops < 1) {
    throw new RangeError(`Relay max hops '${maxHops}' must be a positive integer`);
  }
  const hop = hopOf(opts.via ?? `1.1 p2p-${crypto.randomUUID().slice(0, 8)}`);
  const { hostname, port, tls } = opts;
  const listener = tls
    ? Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key })
    : Deno.listen({ hostname, port });
  return new RelayServer(listener, opts, hop, maxHops);
}

/** What the relay knows of one client connection. */
interface ClientState {
  /** Between requests. */
  idle: boolean;
  /** The upstream connection of the request in progress. */
  upstream?: Deno.Conn;
}

class RelayServer implements Relay {
  readonly addr: Deno.NetAddr;
  readonly url: string;
  #hop: Hop;
  #deadlines: Deadlines;
  /** What each exchange is given of the relay. */
  #context: ExchangeContext;
  #listener: Deno.TcpListener | Deno.TlsListener;
  #opts: RelayOptions;
  /** Request tokens per client address, when a rate is set. */
  #rate: RequestRate | undefined;
  #maxHops: number;
  #idleMs: number;
  #headMs: number;
  #sendMs: number;
  #maxConns: number;
  #maxPerAddress: number;
  /** Client connections per remote address. */
  #perAddress = new Map<string, number>();
  #pool: UpstreamPool;
  /** Client connections: whether each is between requests, and its upstream. */
  #clients = new Map<Deno.Conn, ClientState>();
  #bases = new Map<string, UpstreamBase>();
  #accepting: Promise<void>;
  #closing: Promise<void> | undefined;
  #drained = Promise.withResolvers<void>();
  #counts = { requests: 0, forwarded: 0, failures: 0 };

  constructor(
    listener: Deno.TcpListener | Deno.TlsListener,
    opts: RelayOptions,
    hop: Hop,
    maxHops: number,
  ) {
    this.#listener = listener;
    this.#opts = opts;
    this.#hop = hop;
    this.#maxHops = maxHops;
    const timeoutMs = opts.timeoutMs ?? 30_000;
    this.#idleMs = opts.idleTimeoutMs ?? 60_000;
    this.#headMs = opts.headTimeoutMs ?? 30_000;
    this.#sendMs = opts.sendTimeoutMs ?? 30_000;
    const upstreamIdleMs = opts.upstreamIdleMs ?? IDLE_REUSE_MS;
    this.#maxConns = opts.maxConnections ?? 1024;
    this.#maxPerAddress = opts.maxConnectionsPerAddress ?? 64;
    const rate = opts.requestsPerSecond ?? 0;
    if (rate > 0) {
      this.#rate = new RequestRate({ rate, burst: opts.requestBurst ?? Math.max(1, rate * 2) });
    }
    const shortest = Math.min(
      timeoutMs,
      this.#idleMs,
      this.#headMs,
      this.#sendMs,
      upstreamIdleMs,
    );
    const deadlines = this.#deadlines = new Deadlines(Math.min(250, Math.max(5, shortest / 10)));
    const pool = this.#pool = new UpstreamPool(deadlines, upstreamIdleMs);
    this.#context = {
      hop,
      timeoutMs,
      deadlines,
      failed: (err, req) => this.#failed(err, req),
      release: (up) => pool.release(up),
      proto: opts.tls ? "https" : "http",
    };
    this.addr = listener.addr;
    const url = httpUrl(this.addr.hostname, this.addr.port);
    this.url = opts.tls ? url.replace(/^http:/, "https:") : url;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) this.serve(conn);
    } catch {
      // The listener was closed.
    }
  }

  serve(conn: Deno.Conn): void {
    if (this.#closing || this.#clients.size >= this.#maxConns) return closeQuietly(conn);
    const from = (conn.remoteAddr as Deno.NetAddr).hostname;
    const held = this.#perAddress.get(from) ?? 0;
    if (held >= this.#maxPerAddress) {
      const message =
        `Too many connections from '${from}' (at most ${this.#maxPerAddress} at once)`;
      const answer = localAnswer(429, { code: "too_many_connections", message }, true);
      writeAll(conn, answer).catch(() => {}).finally(() => closeQuietly(conn));
      this.#refused({ status: 429, code: "too_many_connections", from, message });
      return;
    }
    this.#perAddress.set(from, held + 1);
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    const state: ClientState = { idle: true };
    this.#clients.set(conn, state);
    this.#serve(conn, state).finally(() => {
      const left = (this.#perAddress.get(from) ?? 1) - 1;
      if (left > 0) this.#perAddress.set(from, left);
      else this.#perAddress.delete(from);
      this.#clients.delete(conn);
      closeQuietly(conn);
      if (this.#closing && this.#clients.size === 0) this.#drained.resolve();
    });
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
      this.#pool.close();
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
    return { connections: this.#clients.size, ...this.#counts, idleUpstream: this.#pool.idleCount };
  }

  /** Reports a failure to `onError`, and counts it. */
  #failed(err: ProxyError, req: RelayRequest): void {
    this.#counts.failures++;
    this.#opts.onError?.(err, req);
  }

  /** Serves one client connection: request after request, until either side closes. */
  async #serve(conn: Deno.Conn, state: ClientState): Promise<void> {
    const remoteAddr = (conn.remoteAddr as Deno.NetAddr).hostname;
    /** The time limit on the next request head, and on each write: the connection ends. */
    const deadline = this.#deadlines.make(() => closeQuietly(conn));
    // Reads and writes never wait at once here: one deadline serves both.
    const inbox = new Inbox(conn, { deadline, ms: this.#sendMs });
    for (let first = true;; first = false) {
      state.idle = true;
      if (this.#closing) return;
      let head: RequestHead | undefined;
      try {
        deadline.arm(first ? this.#headMs : this.#idleMs);
        head = await readHead(inbox, parseRequestHead, tooLargeRequestHead);
      } catch (err) {
        if (err instanceof HttpParseError) await answerError(inbox, err, true).catch(() => {});
        return;
      } finally {
        deadline.disarm();
      }
      if (!head) return;
      state.idle = false;
      this.#counts.requests++;
      const keep = await this.#dispatch(inbox, head, remoteAddr, state).catch(() => false);
      if (!keep) return;
    }
  }

  /**
   * One request and its answer: checked, routed, answered here or forwarded.
   * Resolves with whether the client connection can carry another request.
   */
  async #dispatch(
    inbox: Inbox,
    head: RequestHead,
    remoteAddr: string,
    state: ClientState,
  ): Promise<boolean> {
    const [path, search] = splitTarget(head.target);
    let framing: BodyFraming;
    try {
      framing = requestFraming(head);
      if (path === "") {
        throw new HttpParseError(400, "bad_request", `Request target '${head.target}' has no path`);
      }
    } catch (err) {
      if (!(err instanceof HttpParseError)) throw err;
      await answerError(inbox, err, true);
      return false;
    }
    const wait = this.#rate?.take(remoteAddr);
    if (wait && !wait.ok) {
      return await this.#overRate(inbox, head, framing, path, remoteAddr, wait);
    }
    const x = new Exchange(this.#context, inbox, head, framing, path, search, remoteAddr);
    try {
      return await this.#answer(x, state);
    } finally {
      x.dispose();
    }
  }

  /**
   * Answers a request over its address's rate with 429 `rate_limited` and
   * `Retry-After`; the connection goes on when the request had no body to skip.
   */
  async #overRate(
    client: Inbox,
    head: RequestHead,
    framing: BodyFraming,
    path: string,
    from: string,
    wait: { retryAfterSeconds: number },
  ): Promise<boolean> {
    const connection = headerValue(head.headers, "connection")?.toLowerCase() ?? "";
    const keep = framing.kind === "none" && head.version === "HTTP/1.1" &&
      !connection.split(",").some((t) => t.trim() === "close");
    const message = `Too many requests from '${from}': retry in ${wait.retryAfterSeconds} s`;
    const retryAfter = { "retry-after": String(wait.retryAfterSeconds) };
    await client.send(localAnswer(429, { code: "rate_limited", message }, !keep, retryAfter));
    this.#refused({
      status: 429,
      code: "rate_limited",
      from,
      message,
      method: head.method,
      path: path.slice(0, 200),
    });
    return keep;
  }

  #refused(refusal: RelayRefusal): void {
    try {
      this.#opts.onRefused?.(refusal);
    } catch { /* a failing listener must not stop the relay */ }
  }

  /** Routes the exchange `x` and answers it here or forwards it (see `#dispatch`). */
  async #answer(x: Exchange, state: ClientState): Promise<boolean> {
    const { inbox: client, head, framing } = x;
    // An answer made here leaves any request body unread: the connection ends.
    const keepAfterAnswer = x.keep && framing.kind === "none";
    const fail = async (err: ProxyError) => {
      this.#failed(err, x.req);
      await answerError(client, err, !keepAfterAnswer);
      return keepAfterAnswer;
    };

    const hops = viaEntries(headerValue(head.headers, "via"));
    const loop = loopError(hops, this.#hop, this.#maxHops, x.what);
    if (loop) return await fail(loop);

    let route: RelayRoute;
    let base: UpstreamBase;
    try {
      route = this.#opts.route(x.req);
      if ("answer" in route) {
        const a = route.answer;
        const bytes = localAnswer(a.status, undefined, !keepAfterAnswer, a.headers, a.json);
        await client.send(bytes);
        return keepAfterAnswer;
      }
      base = this.#base(route.upstream);
    } catch (err) {
      return await fail(new ProxyError(502, `Cannot proxy '${x.what}': ${(err as Error).message}`));
    }
    const prefix = route.stripPrefix?.replace(/\/+$/, "") ?? "";
    x.aim(base, prefix, hops, this.url.slice(`${this.#context.proto}://`.length), route);

    // A reused connection the upstream closed meanwhile fails before any byte of
    // the answer; the request then goes again on a new one. So only requests that
    // may be sent twice (idempotent, without a body) take an idle connection.
    const reusable = framing.kind === "none" && x.upgrade === undefined &&
      head.version === "HTTP/1.1" && IDEMPOTENT.has(head.method);
    for (let attempt = 0;; attempt++) {
      let up: Upstream;
      try {
        up = (reusable && attempt === 0 && this.#pool.take(x.base, route.connector)) ||
          await this.#pool.dial(x.base, route.connector);
      } catch (err) {
        return await fail(
          new ProxyError(
            502,
            `Cannot proxy '${x.what}': upstream ${x.upstreamName} is unreachable: ${
              (err as Error).message
            }`,
            { cause: err },
          ),
        );
      }
      state.upstream = up.conn;
      if (attempt === 0) this.#counts.forwarded++;
      const result = await x.forward(up);
      state.upstream = undefined;
      if (result === "retry" && up.reused && attempt === 0) continue;
      if (result === "retry") {
        return await fail(
          new ProxyError(
            502,
            `Cannot proxy '${x.what}': upstream ${x.upstreamName} closed the connection`,
          ),
        );
      }
      if (result instanceof ProxyError) return await fail(result);
      return result;
    }
  }

  /** An upstream base URL, parsed once. */
  #base(upstream: string): UpstreamBase {
    let base = this.#bases.get(upstream);
    if (base) return base;
    base = parseUpstream(upstream);
    if (this.#bases.size > 1024) this.#bases.clear();
    this.#bases.set(upstream, base);
    return base;
  }
}

/** Answers a request with the JSON body of `err`. */
function answerError(
  client: Inbox,
  err: HttpParseError | ProxyError,
  close: boolean,
): Promise<void> {
  return client.send(localAnswer(err.status, { code: err.code, message: err.message }, close));
}

function tooLargeRequestHead(): HttpParseError {
  return new HttpParseError(
    431,
    "head_too_large",
    `Request head is over the limit of '${MAX_HEAD}' bytes`,
  );
}
