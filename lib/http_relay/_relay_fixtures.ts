/**
 * Fixtures of the relay's tests: upstreams (a `Deno.serve` app, raw TCP servers,
 * a counting one), a relay in front of one upstream with its failures, raw
 * clients that read one message at a time, and generated bodies.
 *
 * @module
 */
import { createHash } from "node:crypto";
import * as http from "node:http";
import { type ProxyError, type RelayOptions, startRelay } from "./mod.ts";
import { ChunkedTracker } from "./chunked.ts";
import { headEnd } from "./head.ts";
import { concatBytes } from "../../proto/bytes.ts";

export const LOCAL = "127.0.0.1";
export const MiB = 1 << 20;
export const VIA = "1.1 p2p-test";
export const encoder = new TextEncoder();

/** Requests without and with a body: most behaviour is tested for both. */
export const KINDS = [
  { name: "without a body", method: "GET", body: undefined },
  { name: "with a body", method: "POST", body: "payload ✓" },
] as const;

/** A server on 127.0.0.1 and a free port, with its base URL. */
export interface Listening extends AsyncDisposable {
  url: string;
  server: Deno.HttpServer<Deno.NetAddr>;
}

export function listen(handler: Deno.ServeHandler<Deno.NetAddr>, onClose?: () => void): Listening {
  const server = Deno.serve({ hostname: LOCAL, port: 0, onListen() {} }, handler);
  return {
    url: `http://${LOCAL}:${server.addr.port}`,
    server,
    [Symbol.asyncDispose]: () => {
      onClose?.();
      return server.shutdown();
    },
  };
}

/** Block `index` of a generated body: bytes that depend on their position. */
export function block(index: number, size: number): Uint8Array {
  const b = new Uint8Array(size);
  const seed = (index * 2654435761) >>> 0;
  for (let i = 0; i < size; i += 4) {
    b[i] = seed & 0xff;
    b[i + 1] = (seed >>> 8) & 0xff;
    b[i + 2] = i & 0xff;
    b[i + 3] = (i >>> 8) & 0xff;
  }
  return b;
}

export const BLOCK = 64 * 1024;

/** A generated body of `size` bytes, made block by block as it is read. */
export function generated(
  size: number,
  on: {
    block?: (n: number) => void;
    cancel?: () => void;
    start?: (ctrl: ReadableStreamDefaultController<Uint8Array>) => void;
  } = {},
) {
  let sent = 0;
  let index = 0;
  return new ReadableStream<Uint8Array>({
    start(ctrl) {
      on.start?.(ctrl);
    },
    pull(ctrl) {
      if (sent >= size) return ctrl.close();
      const b = block(index++, Math.min(BLOCK, size - sent));
      sent += b.byteLength;
      on.block?.(b.byteLength);
      ctrl.enqueue(b);
    },
    cancel() {
      on.cancel?.();
    },
  }, { highWaterMark: 0 });
}

/** SHA-256 (hex) of what `generated(size)` yields. */
export function generatedHash(size: number): string {
  const hash = createHash("sha256");
  for (let sent = 0, i = 0; sent < size; i++) {
    const b = block(i, Math.min(BLOCK, size - sent));
    hash.update(b);
    sent += b.byteLength;
  }
  return hash.digest("hex");
}

/** `promise`, or a rejection if it takes longer than `ms`: a failure, not a hung test. */
export async function within<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

export const GZIPPED = new Uint8Array(
  await new Response(
    new Blob(["hello ".repeat(100)]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer(),
);

/**
 * The app behind the proxy. Paths may start with `/base`, for an upstream URL
 * with a path.
 */
export function startUpstream() {
  const release = Promise.withResolvers<void>();
  const big = { sent: 0, cancelled: Promise.withResolvers<number>() };
  const answers = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const upload = { received: 0, broken: Promise.withResolvers<number>() };
  const up = listen(async (req) => {
    const url = new URL(req.url);
    const base = url.pathname.startsWith("/base") ? "/base" : "";
    const path = url.pathname.slice(base.length) || "/";
    if (path === "/slow") {
      // Answers only when the test ends.
      await release.promise;
      return new Response("late");
    }
    if (path.startsWith("/status/")) {
      const status = Number(path.slice("/status/".length));
      const empty = [204, 304].includes(status);
      return new Response(empty ? null : `status ${status}`, {
        status,
        headers: { "x-status": String(status) },
      });
    }
    if (path === "/redirect") {
      return new Response(null, {
        status: 302,
        headers: {
          location: `${up.url}${base}/target?x=1#frag`,
          "content-location": `${up.url}${base}/redirect`,
        },
      });
    }
    if (path === "/redirect-path") {
      return new Response(null, { status: 303, headers: { location: `${base}/target` } });
    }
    if (path === "/redirect-away") {
      return new Response(null, { status: 302, headers: { location: "http://example.org/x" } });
    }
    if (path === "/cookies") {
      const headers = new Headers({ via: "1.0 app" });
      headers.append("set-cookie", "a=1; Path=/; HttpOnly");
      headers.append("set-cookie", "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT");
      return new Response("cookies", { headers });
    }
    if (path === "/gzip") {
      // Compressed whatever the request accepts, as a precompressed file might be.
      return new Response(GZIPPED, {
        headers: { "content-encoding": "gzip", "content-type": "text/plain" },
      });
    }
    if (path === "/big") {
      const size = Number(url.searchParams.get("size"));
      big.sent = 0;
      const body = generated(size, {
        block: (n) => {
          big.sent += n;
        },
        cancel: () => big.cancelled.resolve(big.sent),
        start: (ctrl) => answers.add(ctrl),
      });
      return new Response(body, {
        headers: { "content-type": "application/octet-stream", "content-length": `${size}` },
      });
    }
    if (path === "/upload") {
      const hash = createHash("sha256");
      upload.received = 0;
      try {
        for await (const chunk of req.body ?? []) {
          hash.update(chunk);
          upload.received += chunk.byteLength;
        }
      } catch {
        upload.broken.resolve(upload.received);
        return new Response(null, { status: 400 });
      }
      return Response.json({
        bytes: upload.received,
        sha256: hash.digest("hex"),
        contentLength: req.headers.get("content-length"),
        transferEncoding: req.headers.get("transfer-encoding"),
      });
    }
    // Anything else echoes the request.
    return Response.json({
      method: req.method,
      path: url.pathname,
      search: url.search,
      headers: Object.fromEntries(req.headers),
      body: await req.text(),
    }, { headers: { "x-echo": "1" } });
  }, () => end());
  /** Ends what still waits or streams, so that a failed test cannot hang the shutdown. */
  const end = () => {
    release.resolve();
    for (const ctrl of answers) {
      try {
        ctrl.error(new Error("The test is over"));
      } catch {
        // Already finished.
      }
    }
  };
  return { ...up, big, upload, end };
}

/** What {@linkcode startProxy} takes: one upstream for every request. */
export type ProxyOptions = Omit<RelayOptions, "hostname" | "port" | "route" | "onError"> & {
  upstream: string | (() => string);
  stripPrefix?: string;
};

/** A relay on 127.0.0.1 forwarding every request to `opts.upstream`, with its failures. */
export function startProxy(opts: ProxyOptions) {
  const errors: ProxyError[] = [];
  const failed = Promise.withResolvers<ProxyError>();
  const { upstream, stripPrefix, ...rest } = opts;
  const relay = startRelay({
    ...rest,
    hostname: LOCAL,
    port: 0,
    route: () => ({ upstream: typeof upstream === "string" ? upstream : upstream(), stripPrefix }),
    onError: (e) => {
      errors.push(e);
      failed.resolve(e);
    },
  });
  /** `failed` settles with the first failure. */
  return Object.assign(relay, { errors, failed: failed.promise });
}

/** A raw TCP server, for answers `Deno.serve` would not give or to watch a socket. */
export function rawServer(onConn: (conn: Deno.Conn, head: string) => Promise<void>) {
  const listener = Deno.listen({ hostname: LOCAL, port: 0 });
  const served = (async () => {
    for await (const conn of listener) {
      const buf = new Uint8Array(64 * 1024);
      let head = "";
      while (!head.includes("\r\n\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      try {
        await onConn(conn, head);
      } finally {
        conn.close();
      }
    }
  })();
  return {
    url: `http://${LOCAL}:${listener.addr.port}`,
    async [Symbol.asyncDispose]() {
      listener.close();
      await served;
    },
  };
}

/** Sends raw bytes to `url`'s server and returns all it answers until it closes. */
export async function rawExchange(url: string, request: string): Promise<string> {
  using conn = await Deno.connect({ hostname: LOCAL, port: Number(new URL(url).port) });
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  for await (const part of conn.readable.pipeThrough(new TextDecoderStream())) text += part;
  return text;
}

/** A raw HTTP/1.1 request that asks for the connection to close after it. */
export function rawRequest(
  kind: (typeof KINDS)[number],
  path: string,
  host: string,
  headers: string[],
) {
  const body = new TextEncoder().encode(kind.body ?? "");
  return [
    `${kind.method} ${path} HTTP/1.1`,
    `Host: ${host}`,
    ...headers,
    ...(kind.body ? [`Content-Length: ${body.byteLength}`] : []),
    "",
    kind.body ?? "",
  ].join("\r\n");
}

/** POSTs `size` generated bytes with node:http, as the CLI does; resolves with the JSON answer. */
export async function upload(
  url: string,
  size: number,
  opts: { chunked?: boolean; onBlock?: (n: number) => void; stopAt?: number } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const answer = Promise.withResolvers<{ status: number; json: Record<string, unknown> }>();
  const req = http.request(url, {
    method: "POST",
    headers: opts.chunked ? {} : { "content-length": String(size) },
  }, (res) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => text += d);
    res.on("end", () => answer.resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    res.on("error", answer.reject);
  });
  req.on("error", answer.reject);
  let sent = 0;
  for await (const b of generated(size, { block: opts.onBlock })) {
    if (opts.stopAt !== undefined && sent >= opts.stopAt) {
      req.destroy();
      break;
    }
    sent += b.byteLength;
    if (!req.write(b)) await new Promise((r) => req.once("drain", r));
  }
  req.end();
  return await answer.promise;
}

export const decoder = new TextDecoder();

/** One answer as a raw client reads it. */
export interface RawAnswer {
  /** The head, CRLFCRLF included. */
  head: string;
  status: number;
  /** Header values by lowercase name, repeated fields joined with ", ". */
  headers: Map<string, string>;
  /** The body bytes as sent: chunked framing included. */
  body: Uint8Array;
  text: string;
}

/**
 * A raw client connection to `url`'s server, reading one message at a time:
 * for what `fetch` hides (the connection, pipelining, interim answers, framing).
 */
export async function rawClient(url: string) {
  const conn = await Deno.connect({ hostname: LOCAL, port: Number(new URL(url).port) });
  let buf: Uint8Array = new Uint8Array(0);
  const readBuf = new Uint8Array(64 * 1024);
  /** Reads more bytes into `buf`; false once the server has closed (or reset) the connection. */
  const more = async () => {
    const n = await conn.read(readBuf).catch(() => null);
    if (n === null) return false;
    buf = concatBytes(buf, readBuf.slice(0, n));
    return true;
  };
  const take = (n: number) => {
    const out = buf.slice(0, n);
    buf = buf.slice(n);
    return out;
  };
  const client = {
    conn,
    /** Writes all of `data`. */
    async send(data: string | Uint8Array) {
      const bytes = typeof data === "string" ? encoder.encode(data) : data;
      for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    },
    /** The next head, up to its CRLFCRLF; rejects if the connection ends first. */
    async head(): Promise<string> {
      for (;;) {
        const end = headEnd(buf, buf.length);
        if (end >= 0) return decoder.decode(take(end));
        if (!await more()) {
          throw new Error(`The connection ended before a head, after ${show(buf)}`);
        }
      }
    },
    /** The next answer, its body read as its framing says (`method` HEAD: none). */
    async answer(method = "GET"): Promise<RawAnswer> {
      const head = await client.head();
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
      const headers = new Map<string, string>();
      for (const line of head.split("\r\n").slice(1, -2)) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
      }
      let body: Uint8Array;
      if (method === "HEAD" || status < 200 || status === 204 || status === 304) {
        body = new Uint8Array(0);
      } else if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
        const tracker = new ChunkedTracker();
        let n = 0;
        for (;;) {
          n += tracker.push(buf.subarray(n));
          if (tracker.done) break;
          if (!await more()) throw new Error("The connection ended inside a chunked body");
        }
        body = take(n);
      } else if (headers.has("content-length")) {
        const length = Number(headers.get("content-length"));
        while (buf.length < length) {
          if (!await more()) throw new Error(`The connection ended inside a ${length}-byte body`);
        }
        body = take(length);
      } else {
        while (await more());
        body = take(buf.length);
      }
      return { head, status, headers, body, text: decoder.decode(body) };
    },
    /** Resolves with what comes until the server closes the connection. */
    async end(): Promise<string> {
      while (await more());
      return decoder.decode(take(buf.length));
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
  return client;
}

/** Bytes for an error message, control characters escaped. */
export function show(bytes: Uint8Array): string {
  return JSON.stringify(decoder.decode(bytes.subarray(0, 200)));
}

/** A GET that keeps the connection open. */
export function get(path: string, extra: string[] = []): string {
  return [`GET ${path} HTTP/1.1`, "Host: relay.test", ...extra, "", ""].join("\r\n");
}

/**
 * An echo app that records the client port of each request, so that distinct ports
 * count distinct upstream connections, and each path it was asked for.
 */
export function startCountingUpstream() {
  const ports: number[] = [];
  const paths: string[] = [];
  const up = listen(async (req, info) => {
    ports.push(info.remoteAddr.port);
    const url = new URL(req.url);
    paths.push(url.pathname);
    // A body the relay broke off (the client left midway) reads as empty.
    const body = await req.text().catch(() => "");
    return new Response(`${req.method} ${url.pathname} ${body}`);
  });
  return { ...up, ports, paths };
}

/** A raw upstream on its own listener: `onConn` owns each connection and closes it. */
export function rawUpstream(onConn: (conn: Deno.Conn, index: number) => Promise<void>) {
  const listener = Deno.listen({ hostname: LOCAL, port: 0 });
  const conns: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(onConn(conn, conns.length));
  })();
  return {
    url: `http://${LOCAL}:${listener.addr.port}`,
    get connections() {
      return conns.length;
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      await Promise.all(conns);
    },
  };
}

/** Reads one request head from `conn`; what follows it in the same reads is dropped. */
export async function readRequestHead(conn: Deno.Conn): Promise<string | undefined> {
  const buf = new Uint8Array(64 * 1024);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return undefined;
    head += decoder.decode(buf.subarray(0, n));
  }
  return head;
}

/**
 * An upstream that answers 413 before reading the body, then reads and drops what
 * comes until the relay closes, as a server should: closing with the body unread
 * would reset the relay's connection before the relay has read the answer.
 */
export function earlyAnswerUpstream() {
  return rawServer(async (conn) => {
    await conn.write(encoder.encode(
      "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!",
    ));
    const buf = new Uint8Array(64 * 1024);
    while (await conn.read(buf).catch(() => null) !== null) { /* dropped */ }
  });
}
