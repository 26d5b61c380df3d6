/**
 * A streaming HTTP reverse proxy: the peer's HTTP server (port 5805) hands every
 * request outside `/_p2p/` to an application server (by default
 * `http://127.0.0.1:5810`) through it, and later forwards requests to other peers.
 *
 * Bodies stream both ways and are never held whole in memory; status, method,
 * query, headers and body pass unchanged, except that hop-by-hop headers are
 * dropped, `X-Forwarded-For`/`-Proto`/`-Host` and `Via` are set, a
 * `Location`/`Content-Location` pointing at the upstream is rewritten to the
 * proxy's own origin, and a request without a body asks for `Accept-Encoding:
 * identity` (see below). Failures answer with the control API's error JSON,
 * `{ error: { code, message } }`: 502 `bad_gateway`, 504 `gateway_timeout`, 508
 * `loop_detected`.
 *
 * Two clients carry the upstream leg, as measured with Deno 2.9.6 on this
 * repository's machine (1 GiB, proxy process alone):
 *
 * - A request without a body goes by `fetch`. `Deno.serve` streams its answer
 *   body without it passing through JavaScript: a download takes 1.0 s and grows
 *   the proxy's RSS by 5 MiB, against 1.7 s and 250 MiB through `node:http`, whose
 *   buffers Deno collects late. `fetch` decodes gzip and br answers (keeping
 *   `Content-Encoding`) unless `Accept-Encoding` is exactly `identity`, so the
 *   upstream is asked for `identity` and the proxy's `Deno.serve` compresses for the
 *   client instead. It also adds `Accept`, `Accept-Language` and `User-Agent` when
 *   the client sent none.
 * - A request with a body goes by `node:http`, fed from the body's reader. `fetch`
 *   takes an upload with a `Content-Length` well (0.9 s), but hides its progress,
 *   so a timeout could not tell an upstream that is slow to answer from a client
 *   that is slow to send; and a chunked one it forwards at about 13 MiB/s (256 MiB
 *   sent in 32 KiB frames: 19 s, against 0.7 s here). `node:http` keeps the
 *   client's `Content-Length` and sends the body as is (1.3 s).
 *
 * WebSocket and other `Upgrade` requests are not proxied (`Upgrade` is hop-by-hop).
 *
 * @example Forward everything outside `/_p2p/` to the app server
 * ```ts ignore
 * import { createProxy } from "./proxy.ts";
 *
 * const proxy = createProxy({ upstream: "http://127.0.0.1:5810", via: "1.1 p2p-3f2a9c" });
 * Deno.serve({ port: 5805 }, (req, info) => proxy(req, { remoteAddr: info.remoteAddr.hostname }));
 * ```
 *
 * @module
 */
import * as http from "node:http";
import { concatBytes } from "../proto/bytes.ts";

/** Options of {@linkcode createProxy}. */
export interface ProxyOptions {
  /**
   * Base URL of the upstream, e.g. `http://127.0.0.1:5810`, or a function giving it
   * per request. A path in it is put before the forwarded path.
   */
  upstream: string | (() => string);
  /** How long the upstream may leave the proxy waiting for its answer, in ms (30 s). */
  timeoutMs?: number;
  /**
   * This hop's `Via` entry, e.g. `1.1 p2p-3f2a9c`: appended to requests and
   * responses, and a request that already lists it is a loop. Random if not given.
   */
  via?: string;
  /** A request whose `Via` lists this many hops or more is a loop (8). */
  maxHops?: number;
  /** A path prefix removed before forwarding, e.g. `/app`; paths without it go as they are. */
  stripPrefix?: string;
  /** Called with each failure answered with a 502, 504 or 508. */
  onError?: (err: ProxyError, req: Request) => void;
}

/** What the proxy needs to know about the client connection. */
export interface ProxyClientInfo {
  /** The client's address, appended to `X-Forwarded-For`. */
  remoteAddr: string;
  /** The scheme the client used (`http`, `https`); the request URL's by default. */
  proto?: string;
  /** The host the client asked for; the `Host` header by default. */
  host?: string;
  /**
   * Aborts when the client goes away (`req.signal` of `Deno.serve`), which stops an
   * upstream request whose answer is still awaited; without it, such a request runs
   * until answered or timed out. Once the answer streams, the client going away
   * stops the upstream by itself. Deno 2.9 warns once when `req.signal` is listened
   * to, unless run with `--unstable-no-legacy-abort`.
   */
  signal?: AbortSignal;
}

/** Forwards one request, resolving with the upstream's answer or an error answer. */
export type ProxyHandler = (req: Request, info: ProxyClientInfo) => Promise<Response>;

/** A proxy failure, with the HTTP status and error code it answers with. */
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

/** Hop-by-hop headers (RFC 9110 §7.6.1), plus `Proxy-Connection` and `Expect`. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  // Answered by this hop's server already; the upstream gets the body straight away.
  "expect",
]);

/** Statuses whose response never has a body. */
const NULL_BODY = new Set([204, 205, 304]);

/**
 * A chunked request body is regrouped into frames of up to this many bytes while
 * the upstream socket is not ready for more.
 */
const MAX_FRAME = 1 << 20;

/**
 * Creates a reverse proxy handler for `Deno.serve`. Each call forwards one request
 * to the upstream and resolves with its answer, whose body streams from the
 * upstream as the client reads it; the client going away stops the upstream
 * request. It never rejects: failures become JSON error answers.
 */
export function createProxy(opts: ProxyOptions): ProxyHandler {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`Proxy timeout '${timeoutMs}' must be a positive number of ms`);
  }
  const maxHops = opts.maxHops ?? 8;
  if (!Number.isInteger(maxHops) || maxHops < 1) {
    throw new RangeError(`Proxy max hops '${maxHops}' must be a positive integer`);
  }
  const via = opts.via ?? `1.1 p2p-${crypto.randomUUID().slice(0, 8)}`;
  if (!/^[^\s,()]+ [^\s,()]+$/.test(via)) {
    throw new TypeError(`Proxy Via entry '${via}' must be '<protocol> <name>', e.g. '1.1 p2p-3f'`);
  }
  const viaKey = viaEntryKey(via);
  const prefix = opts.stripPrefix?.replace(/\/+$/, "") ?? "";
  if (opts.stripPrefix !== undefined && !prefix.startsWith("/")) {
    throw new TypeError(`Proxy prefix '${opts.stripPrefix}' must start with '/'`);
  }
  const { upstream } = opts;
  const fixed = typeof upstream === "string" ? parseUpstream(upstream) : undefined;

  return async (req, info) => {
    const url = new URL(req.url);
    const what = `${req.method} ${url.pathname}`;
    const fail = (err: ProxyError) => {
      opts.onError?.(err, req);
      return Response.json({ error: { code: err.code, message: err.message } }, {
        status: err.status,
        headers: { "cache-control": "no-store" },
      });
    };

    const hops = viaEntries(req.headers.get("via"));
    if (hops.some((h) => viaEntryKey(h) === viaKey)) {
      return fail(
        new ProxyError(508, `Cannot proxy '${what}': this hop '${via}' is already in its Via`),
      );
    }
    if (hops.length >= maxHops) {
      return fail(
        new ProxyError(
          508,
          `Cannot proxy '${what}': it went through ${hops.length} proxies, the limit is ${maxHops}`,
        ),
      );
    }

    let base: URL;
    try {
      base = fixed ?? parseUpstream((upstream as () => string)());
    } catch (err) {
      return fail(new ProxyError(502, `Cannot proxy '${what}': ${(err as Error).message}`));
    }
    const basePath = base.pathname.replace(/\/+$/, "");
    let path = url.pathname;
    if (prefix && (path === prefix || path.startsWith(prefix + "/"))) {
      path = path.slice(prefix.length) || "/";
    }

    const proto = info.proto ?? url.protocol.slice(0, -1);
    const host = info.host ?? req.headers.get("host") ?? url.host;
    const headers = forwardHeaders(req.headers);
    const xff = req.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", xff ? `${xff}, ${info.remoteAddr}` : info.remoteAddr);
    headers.set("x-forwarded-proto", proto);
    headers.set("x-forwarded-host", host);
    headers.set("via", [...hops, via].join(", "));

    const forward: Forward = {
      req,
      target: new URL(base.origin + basePath + path + url.search),
      headers,
      timeoutMs,
      what,
      upstream: base.origin + basePath,
      signal: info.signal,
    };
    const answer = req.body ? await viaNode(forward, req.body) : await viaFetch(forward);
    if (answer instanceof ProxyError) return fail(answer);

    const { status } = answer;
    if (status < 200 || status > 599) {
      answer.body?.cancel().catch(() => {});
      return fail(
        new ProxyError(502, `Cannot proxy '${what}': upstream answered with status ${status}`),
      );
    }
    const out = new Headers();
    const named = connectionTokens(answer.headers.get("connection"));
    for (const [name, value] of answer.headers) {
      if (HOP_BY_HOP.has(name) || named.has(name) || name === "via") continue;
      out.append(name, value);
    }
    const upstreamVia = answer.headers.get("via");
    out.set("via", upstreamVia ? `${upstreamVia}, ${via}` : via);
    for (const name of ["location", "content-location"]) {
      const value = out.get(name);
      if (value === null) continue;
      const mapped = mapLocation(value, base, basePath, `${proto}://${host}`, prefix);
      if (mapped !== value) out.set(name, mapped);
    }

    let body = answer.body;
    if (NULL_BODY.has(status) || req.method === "HEAD") {
      body?.cancel().catch(() => {});
      body = null;
    }
    return new Response(body, {
      status,
      // Only a reason phrase the Response constructor takes.
      statusText: /^[\t\x20-\x7e]*$/.test(answer.statusText) ? answer.statusText : "",
      headers: out,
    });
  };
}

/** One request to forward. */
interface Forward {
  req: Request;
  /** The upstream URL to ask. */
  target: URL;
  headers: Headers;
  timeoutMs: number;
  /** `METHOD /path`, for messages. */
  what: string;
  /** The upstream base URL, for messages. */
  upstream: string;
  signal?: AbortSignal;
}

/** An upstream's answer. */
interface Answer {
  status: number;
  statusText: string;
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
}

function unreachable(f: Forward, err: unknown): ProxyError {
  return new ProxyError(
    502,
    `Cannot proxy '${f.what}': upstream ${f.upstream} is unreachable: ${(err as Error).message}`,
    { cause: err },
  );
}

function timedOut(f: Forward): ProxyError {
  return new ProxyError(
    504,
    `Cannot proxy '${f.what}': upstream ${f.upstream} did not answer within ${f.timeoutMs} ms`,
  );
}

function clientGone(f: Forward): ProxyError {
  return new ProxyError(502, `Cannot proxy '${f.what}': the client went away`);
}

/**
 * Forwards a request without a body with `fetch`, whose answer body `Deno.serve`
 * then streams without it passing through JavaScript. `Accept-Encoding: identity`
 * keeps `fetch` from decoding a compressed answer (it does for any other value,
 * leaving `Content-Encoding` in place).
 */
async function viaFetch(f: Forward): Promise<Answer | ProxyError> {
  f.headers.set("accept-encoding", "identity");
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(timedOut(f)), f.timeoutMs);
  const onGone = () => abort.abort(clientGone(f));
  f.signal?.addEventListener("abort", onGone, { once: true });
  try {
    const res = await fetch(f.target, {
      method: f.req.method,
      headers: f.headers,
      redirect: "manual",
      signal: abort.signal,
    });
    return { status: res.status, statusText: res.statusText, headers: res.headers, body: res.body };
  } catch (err) {
    const reason = abort.signal.reason;
    return reason instanceof ProxyError ? reason : unreachable(f, err);
  } finally {
    clearTimeout(timer);
    f.signal?.removeEventListener("abort", onGone);
  }
}

/**
 * Forwards a request with a body through `node:http`, which sends it with the
 * client's `Content-Length` and as read. The answer body pauses the upstream
 * socket while the client reads slowly, and cancelling it destroys the upstream
 * request. The timeout runs only while the proxy waits on the upstream (for the
 * answer, or for its socket to take more of the body), not on the client.
 */
function viaNode(f: Forward, body: ReadableStream<Uint8Array>): Promise<Answer | ProxyError> {
  const { promise, resolve } = Promise.withResolvers<Answer | ProxyError>();
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of f.headers) {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : [prev, value].flat();
  }
  let answered = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const creq = http.request({
    hostname: f.target.hostname.replace(/^\[|\]$/g, ""),
    port: f.target.port || 80,
    method: f.req.method,
    path: f.target.pathname + f.target.search,
    headers,
    // One connection per request: a kept-alive socket would outlive the handler.
    agent: false,
  });
  const waiting = {
    arm() {
      if (answered) return;
      clearTimeout(timer);
      timer = setTimeout(() => creq.destroy(timedOut(f)), f.timeoutMs);
    },
    disarm() {
      clearTimeout(timer);
    },
  };
  const onGone = () => creq.destroy(clientGone(f));
  f.signal?.addEventListener("abort", onGone, { once: true });
  const settle = (answer: Answer | ProxyError) => {
    answered = true;
    waiting.disarm();
    f.signal?.removeEventListener("abort", onGone);
    resolve(answer);
  };

  creq.on("error", (err: Error) => {
    if (!answered) settle(err instanceof ProxyError ? err : unreachable(f, err));
  });
  creq.on("response", (res: http.IncomingMessage) => {
    res.pause();
    const out = new Headers();
    for (let i = 0; i < res.rawHeaders.length; i += 2) {
      out.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
    }
    let finished = false;
    const stream = new ReadableStream<Uint8Array>({
      start(ctrl) {
        res.on("data", (d: Uint8Array) => {
          if (finished) return;
          // Each chunk has a buffer of its own: no copy needed.
          ctrl.enqueue(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
          if ((ctrl.desiredSize ?? 0) <= 0) res.pause();
        });
        res.on("end", () => {
          if (finished) return;
          finished = true;
          ctrl.close();
        });
        // `error`, or `close` without `end`: the upstream cut the answer short.
        const broken = (err?: Error) => {
          if (finished) return;
          finished = true;
          ctrl.error(
            new Error(`Upstream ${f.upstream} broke off the answer to '${f.what}'`, {
              cause: err,
            }),
          );
        };
        res.on("error", broken);
        res.on("close", () => broken());
      },
      pull() {
        res.resume();
      },
      cancel() {
        finished = true;
        creq.destroy();
      },
    }, { highWaterMark: 4 });
    settle({
      status: res.statusCode ?? 502,
      statusText: res.statusMessage ?? "",
      headers: out,
      body: stream,
    });
  });

  // Failures end up in `creq`'s `error` event; nothing is left to reject.
  pumpBody(body, creq, waiting, !f.headers.has("content-length")).catch(() => {});
  return promise;
}

/**
 * Writes the client's body to the upstream request with backpressure: the next
 * read waits while the upstream socket is full. With chunked transfer coding each
 * write is a frame, and `Deno.serve` reads small frames slowly when its handler
 * awaits between reads (100 MiB in 1 MiB frames to one that writes a file: 0.5 s,
 * in 32 KiB frames: 3.5 s). So what the client has already sent goes out in frames
 * of up to {@linkcode MAX_FRAME} bytes, and a read that is not ready sends what is
 * there. Sent chunked in 32 KiB frames through the proxy to that handler, 100 MiB
 * took 6.6 s one frame per read, 3.2 s grouped (the rest is the proxy's own
 * `Deno.serve` reading the client's small frames).
 */
async function pumpBody(
  body: ReadableStream<Uint8Array>,
  creq: http.ClientRequest,
  waiting: { arm(): void; disarm(): void },
  chunked: boolean,
): Promise<void> {
  const reader = body.getReader();
  const closed = new Promise<"closed">((r) => creq.once("close", () => r("closed")));
  let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  try {
    for (;;) {
      const first = await (pending ?? reader.read());
      pending = undefined;
      if (creq.destroyed) return;
      if (first.done) break;
      const parts = [first.value];
      let size = first.value.byteLength;
      let ended = false;
      while (chunked && size < MAX_FRAME) {
        pending = reader.read();
        const r = await ready(pending);
        if (r === undefined) break;
        pending = undefined;
        if (r.done) {
          ended = true;
          break;
        }
        parts.push(r.value);
        size += r.value.byteLength;
      }
      if (!creq.write(concatBytes(...parts))) {
        waiting.arm();
        const drained = new Promise<"drained">((r) => creq.once("drain", () => r("drained")));
        const won = await Promise.race([drained, closed]);
        waiting.disarm();
        if (won === "closed") return;
      }
      if (ended) break;
    }
    creq.end();
    waiting.arm();
  } catch (err) {
    // The client's body failed (it went away mid-upload): the upstream must not
    // take a truncated body for a whole one.
    creq.destroy(err as Error);
  } finally {
    pending?.catch(() => {});
    if (creq.destroyed) reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** What `p` settles with if it does before the event loop turns, else `undefined`. */
async function ready<T>(p: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), 0)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The request headers to forward: without hop-by-hop ones, `Host` and `Via`. */
function forwardHeaders(headers: Headers): Headers {
  const named = connectionTokens(headers.get("connection"));
  const out = new Headers();
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name) || named.has(name) || name === "host" || name === "via") continue;
    out.append(name, value);
  }
  return out;
}

/** The header names listed in a `Connection` header, lower case. */
function connectionTokens(value: string | null): Set<string> {
  return new Set(
    (value ?? "").split(",").map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0),
  );
}

/** The entries of a `Via` header, comments removed. */
function viaEntries(value: string | null): string[] {
  if (!value) return [];
  return value.replace(/\([^)]*\)/g, "").split(",").map((e) => e.trim()).filter((e) =>
    e.length > 0
  );
}

/** What identifies a `Via` entry: its protocol and name, lower case. */
function viaEntryKey(entry: string): string {
  return entry.trim().split(/\s+/).slice(0, 2).join(" ").toLowerCase();
}

/** Parses an upstream base URL. */
function parseUpstream(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`Proxy upstream '${value}' is not a URL`);
  }
  if (url.protocol !== "http:") {
    throw new TypeError(`Proxy upstream '${value}' must be an http:// URL`);
  }
  return url;
}

/**
 * Maps a `Location` on the upstream to the proxy: an absolute URL at the upstream's
 * origin to `publicOrigin`, and a path from the root (absolute or not) from under
 * `basePath` to under `prefix`. Leaves any other as it is.
 */
function mapLocation(
  value: string,
  base: URL,
  basePath: string,
  publicOrigin: string,
  prefix: string,
): string {
  const absolute = /^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith("//");
  if (!absolute && !value.startsWith("/")) return value;
  let target: URL;
  try {
    target = new URL(value, base);
  } catch {
    return value;
  }
  if (target.origin !== base.origin) return value;
  let path = target.pathname;
  if (basePath && (path === basePath || path.startsWith(basePath + "/"))) {
    path = path.slice(basePath.length) || "/";
  }
  if (!absolute && !basePath && !prefix) return value;
  return (absolute ? publicOrigin : "") + prefix + path + target.search + target.hash;
}
