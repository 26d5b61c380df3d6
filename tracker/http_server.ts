/**
 * The tracker's HTTP(S) listener: `node:http` (or `node:https`) carrying a fetch-style
 * handler, chosen over `Deno.serve` because a stranger must not be able to hold the
 * tracker's sockets. `Deno.serve` has no request-head timeout (a head that trickles a
 * byte a second stayed open for as long as it trickled) and tells the handler nothing
 * about connections, so it can neither cap them per address nor cut slow heads. Here:
 *
 * - at most `connectionsPerAddress` open connections per remote address and
 *   `maxConnections` in all; one more is answered `429` (plain HTTP) and closed;
 * - the request head must arrive whole within `headTimeoutMs` and the whole request
 *   within `requestTimeoutMs` (`408`), a head over `maxHeadBytes` is `431`, and any
 *   request the parser cannot read is `400`: each a JSON error body, then the close;
 * - an idle keep-alive connection closes after `idleTimeoutMs`.
 *
 * The cost, measured with `bench/run.ts tracker_http` (figures in its module doc):
 * `node:http` in Deno takes two to three times the CPU of `Deno.serve` per request and
 * about 90 MiB more memory under load (young-generation heap grown by its per-request
 * garbage), whatever the bridge does. The bridge keeps its own share small: a
 * `Request` built without an init dictionary, and answers the app makes whole (JSON,
 * text) read as one string and written in one piece with their head. `Deno.serve`
 * behind a byte-level forwarder that enforced these limits was measured at the speed
 * of `node:http` with 50-60 MiB less memory, but it would answer malformed requests
 * with hyper's empty 400 rather than JSON; it is not done.
 *
 * @module
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { errorBody } from "../lib/http_api.ts";

/** Limits of the listener. */
export interface ListenerLimits {
  /** Open connections per remote address. */
  connectionsPerAddress: number;
  /** Open connections in all. */
  maxConnections: number;
  /** A request head must be complete within this many ms of the connection or the last request. */
  headTimeoutMs: number;
  /** A whole request (head and body) must arrive within this many ms. */
  requestTimeoutMs: number;
  /** A keep-alive connection with no request for this many ms is closed. */
  idleTimeoutMs: number;
  /** Largest request head, in bytes. */
  maxHeadBytes: number;
}

/** Defaults of `ListenerLimits`. */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = {
  connectionsPerAddress: 64,
  maxConnections: 2048,
  headTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 15_000,
  maxHeadBytes: 16 * 1024,
};

/** What the listener tells its owner about connections and requests it refused itself. */
export type RefusalReporter = (
  fields: { remote: string; status: number; code: string; message: string },
) => void;

/** Options of `listen()`. */
export interface ListenOptions {
  hostname: string;
  port: number;
  /** PEM certificate chain and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  limits: ListenerLimits;
  /** Answers one request; `remote` is the caller's address. */
  handler: (req: Request, remote: Deno.NetAddr) => Response | Promise<Response>;
  /** Told of each refusal the listener answers itself (connection caps, bad heads, timeouts). */
  onRefused?: RefusalReporter;
  /** Told of a handler failure (the caller still gets a 503). */
  onError?: (err: unknown) => void;
}

/** A listening server. */
export interface Listener {
  addr: Deno.NetAddr;
  /** Stops accepting, lets requests under way finish (10 s at most), then closes every connection. */
  shutdown(): Promise<void>;
}

/** Starts listening; resolves once the port is bound. */
export async function listen(opts: ListenOptions): Promise<Listener> {
  const { limits } = opts;
  const serverOptions = {
    headersTimeout: limits.headTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // How often head and request deadlines are checked (Node's default is 30 s).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headTimeoutMs / 4)),
    maxHeaderSize: limits.maxHeadBytes,
    noDelay: true,
  };
  const scheme = opts.tls ? "https" : "http";
  let inflight = 0;
  let drained: PromiseWithResolvers<void> | undefined;
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    inflight++;
    answer(req, res, scheme, opts).finally(() => {
      if (--inflight === 0) drained?.resolve();
    });
  };
  const server: http.Server = opts.tls
    ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key }, onRequest)
    : http.createServer(serverOptions, onRequest);

  const perAddress = new Map<string, number>();
  let total = 0;
  server.on("connection", (socket: Socket) => {
    const remote = socket.remoteAddress ?? "";
    const open = perAddress.get(remote) ?? 0;
    if (open >= limits.connectionsPerAddress || total >= limits.maxConnections) {
      const message = open >= limits.connectionsPerAddress
        ? `Too many connections from '${remote}' (at most ${limits.connectionsPerAddress})`
        : `Too many connections (at most ${limits.maxConnections})`;
      opts.onRefused?.({ remote, status: 429, code: "too_many_connections", message });
      if (opts.tls) socket.destroy();
      else {
        refuse(socket, 429, "too_many_connections", message, { "Retry-After": "1" });
      }
      return;
    }
    perAddress.set(remote, open + 1);
    total++;
    socket.once("close", () => {
      total--;
      const n = (perAddress.get(remote) ?? 1) - 1;
      if (n <= 0) perAddress.delete(remote);
      else perAddress.set(remote, n);
    });
  });
  server.on("clientError", (err: Error & { code?: string }, socket: Socket) => {
    const remote = socket.remoteAddress ?? "";
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    let status = 400;
    let code = "bad_request";
    let message = `Request is not valid HTTP/1.1 (${err.code ?? "parse error"})`;
    if (err.code === "HPE_HEADER_OVERFLOW") {
      status = 431;
      code = "head_too_large";
      message = `Request head is over ${limits.maxHeadBytes} bytes`;
    } else if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      status = 408;
      code = "timeout";
      message = `Request did not arrive within ${limits.headTimeoutMs} ms (head) or ` +
        `${limits.requestTimeoutMs} ms (whole)`;
    }
    opts.onRefused?.({ remote, status, code, message });
    refuse(socket, status, code, message);
  });

  const listening = Promise.withResolvers<void>();
  const failed = (err: Error & { code?: string }) =>
    listening.reject(
      // Callers know Deno's error for a port in use, as `Deno.listen` throws it.
      err.code === "EADDRINUSE"
        ? new Deno.errors.AddrInUse(`${opts.hostname}:${opts.port}: ${err.message}`)
        : err,
    );
  server.once("error", failed);
  server.listen(opts.port, opts.hostname, () => listening.resolve());
  await listening.promise;
  server.off("error", failed);
  const bound = server.address();
  if (bound === null || typeof bound === "string") throw new TypeError("Listener has no address");
  const addr: Deno.NetAddr = { transport: "tcp", hostname: bound.address, port: bound.port };

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inflight > 0) {
        // Requests under way may finish, for up to STOP_GRACE_MS (a body that trickles
        // does not hold the stop for the whole request timeout).
        drained = Promise.withResolvers<void>();
        const grace = setTimeout(() => drained?.resolve(), STOP_GRACE_MS);
        await drained.promise;
        clearTimeout(grace);
      }
      server.closeAllConnections();
      await closed;
    })();
  return { addr, shutdown };
}

/** How long a stop waits for the requests under way. */
const STOP_GRACE_MS = 10_000;

const REASONS: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
};

/** Writes a JSON error answer on a raw socket and closes it. */
function refuse(
  socket: Socket,
  status: number,
  code: string,
  message: string,
  extra: Record<string, string> = {},
): void {
  const body = JSON.stringify(errorBody(code, message));
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}`,
    "Content-Type: application/json",
    `Content-Length: ${new TextEncoder().encode(body).byteLength}`,
    "Connection: close",
    ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`),
  ].join("\r\n");
  socket.end(`${head}\r\n\r\n${body}`);
}

/** Carries one request to the handler and its answer back, streaming both bodies. */
async function answer(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  scheme: string,
  opts: ListenOptions,
): Promise<void> {
  const socket = req.socket;
  const remote: Deno.NetAddr = {
    transport: "tcp",
    hostname: socket.remoteAddress ?? "",
    port: socket.remotePort ?? 0,
  };
  let response: Response;
  try {
    const url = req.url ?? "";
    if (!url.startsWith("/")) {
      response = Response.json(
        errorBody("bad_request", `Request target '${url.slice(0, 64)}' is not a path`),
        { status: 400 },
      );
    } else {
      const hasBody = req.headers["transfer-encoding"] !== undefined ||
        (req.headers["content-length"] !== undefined && req.headers["content-length"] !== "0");
      const method = req.method ?? "GET";
      // A Request without an init dictionary, its fields appended: a fifth of the cost
      // of `new Request(url, { method, headers, … })` and its WebIDL conversions.
      const target = `${scheme}://localhost${url}`;
      const request = hasBody && method !== "GET" && method !== "HEAD"
        // @ts-ignore: `duplex` is required by fetch's Request for a streamed body.
        ? new Request(target, { method, body: bodyStream(req), duplex: "half" })
        : method === "GET"
        ? new Request(target)
        : new Request(target, { method });
      const raw = req.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) request.headers.append(raw[i], raw[i + 1]);
      response = await opts.handler(request, remote);
    }
  } catch (err) {
    opts.onError?.(err);
    response = Response.json(
      errorBody("unavailable", "Tracker cannot serve this now"),
      { status: 503 },
    );
  }
  // A body the handler did not read (an early refusal) is not read on: the answer
  // closes the connection, rather than pump the rest of a refused upload.
  await send(res, response, req.method === "HEAD", !req.complete);
}

/** Bytes of a body the handler stopped reading that are still read and dropped. */
const DISCARD_LIMIT = 4 * 1024 * 1024;

/**
 * A request body as a web stream, read only as fast as it is consumed. A client that
 * hangs up mid-body errors it (never a clean end). Cancelling it does not close the
 * connection, so an early answer (413, 401) still reaches the client: the rest of the
 * body is read and dropped, up to `DISCARD_LIMIT` bytes, and then the socket goes.
 */
function bodyStream(req: http.IncomingMessage): ReadableStream<Uint8Array> {
  let cancelled = false;
  return new ReadableStream<Uint8Array>({
    start(ctrl) {
      req.pause();
      req.on("data", (chunk: Uint8Array) => {
        if (cancelled) return;
        ctrl.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((ctrl.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once("end", () => {
        if (!cancelled) ctrl.close();
      });
      req.once("close", () => {
        if (!cancelled && !req.complete) {
          cancelled = true;
          ctrl.error(new TypeError("Client closed the connection before the body ended"));
        }
      });
      req.on("error", () => {});
    },
    pull() {
      req.resume();
    },
    cancel() {
      cancelled = true;
      let dropped = 0;
      req.on("data", (chunk: Uint8Array) => {
        dropped += chunk.byteLength;
        if (dropped > DISCARD_LIMIT) req.socket.destroy();
      });
      req.resume();
    },
  }, { highWaterMark: 4 });
}

/** Answers the app makes whole (`c.json()`, `c.text()`): read at once, written with the head. */
const WHOLE_TYPES = /^(?:application\/json|text\/)/;

/** Writes a fetch `Response` to a node `ServerResponse`, with backpressure. */
async function send(
  res: http.ServerResponse,
  response: Response,
  head: boolean,
  close: boolean,
): Promise<void> {
  if (response.body && !head && WHOLE_TYPES.test(response.headers.get("content-type") ?? "")) {
    let text: string;
    try {
      text = await response.text();
    } catch {
      res.destroy();
      return;
    }
    // One flat list and one write of head and body: `setHeader()` for each field and a
    // body read in pieces cost more than the rest of a small answer.
    const fields: string[] = [];
    response.headers.forEach((value, name) => {
      if (name !== "content-length") fields.push(name, value);
    });
    fields.push("content-length", String(Buffer.byteLength(text)));
    if (close) fields.push("connection", "close");
    res.writeHead(response.status, fields);
    res.end(text);
    return;
  }
  res.statusCode = response.status;
  response.headers.forEach((value, name) => res.setHeader(name, value));
  if (close) res.setHeader("connection", "close");
  if (!response.body || head) {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const gone = () => reader.cancel().catch(() => {});
  try {
    // Most answers are one piece: written at once, with their length.
    const first = await reader.read();
    if (first.done) {
      res.end();
      return;
    }
    const second = await reader.read();
    if (second.done) {
      if (!res.hasHeader("content-length")) res.setHeader("content-length", first.value.byteLength);
      res.end(first.value);
      return;
    }
    // A stream: the client going away stops it.
    res.once("close", gone);
    let next: ReadableStreamReadResult<Uint8Array> = second;
    if (!res.write(first.value)) await drain(res);
    while (!next.done && !res.destroyed) {
      if (!res.write(next.value)) await drain(res);
      next = await reader.read();
    }
    res.end();
  } catch {
    // The handler's body broke off: the client must not take a cut answer for a whole one.
    res.destroy();
  } finally {
    res.off("close", gone);
  }
}

function drain(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
