import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import * as http from "node:http";
import { type ProxyError, type RelayOptions, startRelay } from "./relay.ts";
import { ChunkedTracker, headEnd, MAX_HEAD } from "../proto/http1.ts";
import { concatBytes } from "../proto/bytes.ts";

const LOCAL = "127.0.0.1";
const MiB = 1 << 20;
const VIA = "1.1 p2p-test";
const encoder = new TextEncoder();

/** Requests without and with a body: most behaviour is tested for both. */
const KINDS = [
  { name: "without a body", method: "GET", body: undefined },
  { name: "with a body", method: "POST", body: "payload ✓" },
] as const;

/** A server on 127.0.0.1 and a free port, with its base URL. */
interface Listening extends AsyncDisposable {
  url: string;
  server: Deno.HttpServer<Deno.NetAddr>;
}

function listen(handler: Deno.ServeHandler<Deno.NetAddr>, onClose?: () => void): Listening {
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
function block(index: number, size: number): Uint8Array {
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

const BLOCK = 64 * 1024;

/** A generated body of `size` bytes, made block by block as it is read. */
function generated(
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
function generatedHash(size: number): string {
  const hash = createHash("sha256");
  for (let sent = 0, i = 0; sent < size; i++) {
    const b = block(i, Math.min(BLOCK, size - sent));
    hash.update(b);
    sent += b.byteLength;
  }
  return hash.digest("hex");
}

/** `promise`, or a rejection if it takes longer than `ms`: a failure, not a hung test. */
async function within<T>(promise: Promise<T>, what: string, ms = 5_000): Promise<T> {
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

const GZIPPED = new Uint8Array(
  await new Response(
    new Blob(["hello ".repeat(100)]).stream().pipeThrough(new CompressionStream("gzip")),
  ).arrayBuffer(),
);

/**
 * The app behind the proxy. Paths may start with `/base`, for an upstream URL
 * with a path.
 */
function startUpstream() {
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
type ProxyOptions = Omit<RelayOptions, "hostname" | "port" | "route" | "onError"> & {
  upstream: string | (() => string);
  stripPrefix?: string;
};

/** A relay on 127.0.0.1 forwarding every request to `opts.upstream`, with its failures. */
function startProxy(opts: ProxyOptions) {
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
function rawServer(onConn: (conn: Deno.Conn, head: string) => Promise<void>) {
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
async function rawExchange(url: string, request: string): Promise<string> {
  using conn = await Deno.connect({ hostname: LOCAL, port: Number(new URL(url).port) });
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  for await (const part of conn.readable.pipeThrough(new TextDecoderStream())) text += part;
  return text;
}

/** A raw HTTP/1.1 request that asks for the connection to close after it. */
function rawRequest(kind: (typeof KINDS)[number], path: string, host: string, headers: string[]) {
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
async function upload(
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

Deno.test("startRelay() passes methods, path, query, headers and body through", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
    for (const body of [undefined, `body of ${method} ✓`]) {
      if (body && method === "GET") continue;
      const res = await fetch(`${px.url}/some/path?a=1&b=%20x&a=2&empty=&flag`, {
        method,
        body,
        headers: { "x-custom": "kept", accept: "application/json", "user-agent": "test/1" },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-echo"), "1");
      const echo = await res.json();
      assert.equal(echo.method, method);
      assert.equal(echo.path, "/some/path");
      assert.equal(echo.search, "?a=1&b=%20x&a=2&empty=&flag");
      assert.equal(echo.headers["x-custom"], "kept");
      assert.equal(echo.headers.accept, "application/json");
      assert.equal(echo.headers["user-agent"], "test/1");
      assert.equal(echo.headers.host, new URL(up.url).host);
      assert.equal(echo.body, body ?? "");
      if (body) {
        assert.equal(echo.headers["content-length"], String(new Blob([body]).size));
      }
    }
  }
  const head = await fetch(`${px.url}/anything`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("x-echo"), "1");
  assert.equal(head.headers.get("content-type"), "application/json");
  assert.equal(await head.text(), "");
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() puts an upstream URL's path before the forwarded path", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: `${up.url}/base/`, via: VIA });
  const echo = await (await fetch(`${px.url}/echo?q=1`)).json();
  assert.equal(echo.path, "/base/echo");
  assert.equal(echo.search, "?q=1");
  const res = await fetch(`${px.url}/redirect`, { redirect: "manual" });
  assert.equal(res.headers.get("location"), `${px.url}/target?x=1#frag`);
  const relative = await fetch(`${px.url}/redirect-path`, { redirect: "manual" });
  assert.equal(relative.headers.get("location"), "/target");
});

Deno.test("startRelay() rejects bad options", () => {
  const ok = { hostname: LOCAL, port: 0, route: () => ({ upstream: "http://127.0.0.1:1" }) };
  assert.throws(() => startRelay({ ...ok, timeoutMs: 0 }), RangeError);
  assert.throws(() => startRelay({ ...ok, idleTimeoutMs: -1 }), RangeError);
  assert.throws(() => startRelay({ ...ok, headTimeoutMs: Infinity }), RangeError);
  assert.throws(() => startRelay({ ...ok, maxHops: 0 }), RangeError);
  assert.throws(() => startRelay({ ...ok, via: "p2p" }), TypeError);
});

Deno.test("startRelay() answers 502 JSON for an upstream that is not an http:// URL", async () => {
  for (const upstream of ["not a url", "https://127.0.0.1:1"]) {
    await using px = startProxy({ upstream, via: VIA });
    const res = await fetch(`${px.url}/x`);
    assert.equal(res.status, 502);
    assert.match((await res.json()).error.message, new RegExp(`upstream '${upstream}'`));
    assert.equal(px.errors.length, 1);
  }
});

for (const kind of KINDS) {
  const init = { method: kind.method, body: kind.body };

  Deno.test(`startRelay() passes status codes through (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    for (const status of [200, 201, 204, 304, 400, 404, 418, 500, 503]) {
      const res = await fetch(`${px.url}/status/${status}`, init);
      assert.equal(res.status, status);
      assert.equal(res.headers.get("x-status"), String(status));
      assert.equal(await res.text(), [204, 304].includes(status) ? "" : `status ${status}`);
    }
  });

  Deno.test(`startRelay() sets X-Forwarded-* and appends Via both ways (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const res = await fetch(`${px.url}/echo`, {
      ...init,
      headers: { "x-forwarded-for": "10.1.2.3", via: "1.0 client-side" },
    });
    const echo = await res.json();
    assert.equal(echo.headers["x-forwarded-for"], `10.1.2.3, ${LOCAL}`);
    assert.equal(echo.headers["x-forwarded-proto"], "http");
    assert.equal(echo.headers["x-forwarded-host"], new URL(px.url).host);
    assert.equal(echo.headers.via, `1.0 client-side, ${VIA}`);
    assert.equal(res.headers.get("via"), VIA);

    const plain = await (await fetch(`${px.url}/echo`, init)).json();
    assert.equal(plain.headers["x-forwarded-for"], LOCAL);
    assert.equal(plain.headers.via, VIA);

    const app = await fetch(`${px.url}/cookies`, init);
    assert.equal(app.headers.get("via"), `1.0 app, ${VIA}`);
    await app.body?.cancel();
  });

  Deno.test(`startRelay() keeps every Set-Cookie value (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const res = await fetch(`${px.url}/cookies`, init);
    assert.deepEqual(res.headers.getSetCookie(), [
      "a=1; Path=/; HttpOnly",
      "b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT",
    ]);
    assert.equal(await res.text(), "cookies");
  });

  Deno.test(`startRelay() passes a compressed answer as it is (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const res = await fetch(`${px.url}/gzip`, {
      ...init,
      headers: { "accept-encoding": "identity" },
    });
    assert.equal(res.headers.get("content-encoding"), "gzip");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), GZIPPED);
    // The client's wish goes to the upstream as it is.
    const echo = await (await fetch(`${px.url}/echo`, {
      ...init,
      headers: { "accept-encoding": "gzip, br" },
    })).json();
    assert.equal(echo.headers["accept-encoding"], "gzip, br");
  });

  Deno.test(`startRelay() drops hop-by-hop request headers (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const answer = await rawExchange(
      px.url,
      rawRequest(kind, "/echo", new URL(px.url).host, [
        "Connection: close, X-Drop-Me",
        "X-Drop-Me: 1",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Proxy-Authorization: Basic dTpw",
        "Proxy-Connection: keep-alive",
        "Upgrade: example/1",
        "X-Keep: yes",
      ]),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
    const echo = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4));
    const names = Object.keys(echo.headers);
    for (
      const hop of [
        "x-drop-me",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
      ]
    ) {
      assert.ok(!names.includes(hop), `'${hop}' reached the upstream: ${names}`);
    }
    // The proxy's own connection to the upstream may have one, not the client's.
    assert.doesNotMatch(echo.headers.connection ?? "", /x-drop-me/i);
    assert.equal(echo.headers["x-keep"], "yes");
    assert.equal(echo.body, kind.body ?? "");
  });

  Deno.test(`startRelay() drops hop-by-hop response headers (${kind.name})`, async () => {
    const heads: string[] = [];
    await using raw = rawServer(async (conn, head) => {
      heads.push(head);
      await conn.write(new TextEncoder().encode(
        [
          "HTTP/1.1 201 Created",
          "Content-Length: 2",
          "Connection: close, X-Hop",
          "X-Hop: 1",
          "Keep-Alive: timeout=5",
          "Proxy-Authenticate: Basic",
          "Trailer: X-Checksum",
          "Upgrade: example/1",
          "Via: 1.0 raw",
          "X-End: yes",
          "",
          "ok",
        ].join("\r\n"),
      ));
    });
    await using px = startProxy({ upstream: raw.url, via: VIA });
    const res = await fetch(`${px.url}/x`, init);
    assert.equal(res.status, 201);
    assert.equal(await res.text(), "ok");
    for (const hop of ["x-hop", "keep-alive", "proxy-authenticate", "trailer", "upgrade"]) {
      assert.equal(res.headers.get(hop), null, `'${hop}' reached the client`);
    }
    assert.equal(res.headers.get("x-end"), "yes");
    assert.equal(res.headers.get("via"), `1.0 raw, ${VIA}`);
    assert.match(heads[0], new RegExp(`^${kind.method} /x HTTP/1\\.1\\r\\n`));
  });

  Deno.test(`startRelay() rewrites a Location at the upstream (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const res = await fetch(`${px.url}/redirect`, { ...init, redirect: "manual" });
    assert.equal(res.status, 302);
    assert.equal(res.headers.get("location"), `${px.url}/target?x=1#frag`);
    assert.equal(res.headers.get("content-location"), `${px.url}/redirect`);
    // Elsewhere, or relative without a prefix: unchanged.
    const away = await fetch(`${px.url}/redirect-away`, { ...init, redirect: "manual" });
    assert.equal(away.headers.get("location"), "http://example.org/x");
    const relative = await fetch(`${px.url}/redirect-path`, { ...init, redirect: "manual" });
    assert.equal(relative.headers.get("location"), "/target");
    // The origin is the one the client asked for.
    const named = await rawExchange(
      px.url,
      rawRequest(kind, "/redirect", "peer.example:5805", ["Connection: close"]),
    );
    assert.match(named, /\r\nlocation: http:\/\/peer\.example:5805\/target\?x=1#frag\r\n/i);
  });

  Deno.test(`startRelay() strips a path prefix and restores it in Location (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA, stripPrefix: "/app/" });
    const echo = await (await fetch(`${px.url}/app/echo?q=1`, init)).json();
    assert.equal(echo.path, "/echo");
    assert.equal(echo.search, "?q=1");
    const root = await (await fetch(`${px.url}/app`, init)).json();
    assert.equal(root.path, "/");
    const other = await (await fetch(`${px.url}/application`, init)).json();
    assert.equal(other.path, "/application");
    const res = await fetch(`${px.url}/app/redirect`, { ...init, redirect: "manual" });
    assert.equal(res.headers.get("location"), `${px.url}/app/target?x=1#frag`);
    const relative = await fetch(`${px.url}/app/redirect-path`, { ...init, redirect: "manual" });
    assert.equal(relative.headers.get("location"), "/app/target");
  });

  Deno.test(`startRelay() answers 502 JSON while the upstream is down (${kind.name})`, async () => {
    await using up = startUpstream();
    const dead = (() => {
      using l = Deno.listen({ hostname: LOCAL, port: 0 });
      return `http://${LOCAL}:${l.addr.port}`;
    })();
    let upstream = dead;
    await using px = startProxy({ upstream: () => upstream, via: VIA });
    const res = await fetch(`${px.url}/echo`, init);
    assert.equal(res.status, 502);
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["error"]);
    assert.equal(body.error.code, "bad_gateway");
    assert.match(
      body.error.message,
      new RegExp(`^Cannot proxy '${kind.method} /echo': upstream ${dead} is unreachable: .+`),
    );
    assert.equal(px.errors.length, 1);
    assert.equal(px.errors[0].status, 502);

    // The proxy keeps serving, and reaches the upstream once it is up.
    assert.equal((await fetch(`${px.url}/echo`, init)).status, 502);
    upstream = up.url;
    const again = await fetch(`${px.url}/echo`, init);
    assert.equal(again.status, 200);
    assert.equal((await again.json()).body, kind.body ?? "");
  });

  Deno.test(`startRelay() answers 504 JSON when the upstream is too slow (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA, timeoutMs: 200 });
    const t0 = performance.now();
    const res = await fetch(`${px.url}/slow`, init);
    const ms = performance.now() - t0;
    assert.equal(res.status, 504);
    const body = await res.json();
    assert.equal(body.error.code, "gateway_timeout");
    assert.match(body.error.message, /did not answer within 200 ms/);
    assert.ok(ms >= 190 && ms < 5_000, `answered after ${ms} ms`);
    assert.equal(px.errors[0].status, 504);
    // A quick answer is not timed out.
    assert.equal(await fetch(`${px.url}/status/201`, init).then((r) => r.text()), "status 201");
  });

  Deno.test(`startRelay() stops the upstream request when the client goes away before the answer (${kind.name})`, async () => {
    const arrived = Promise.withResolvers<void>();
    const closed = Promise.withResolvers<void>();
    await using raw = rawServer(async (conn) => {
      arrived.resolve();
      // Never answers; waits for the proxy to close the connection.
      const buf = new Uint8Array(1024);
      while (await conn.read(buf) !== null) { /* the body, if any */ }
      closed.resolve();
    });
    await using px = startProxy({ upstream: raw.url, via: VIA });
    const client = new AbortController();
    const res = fetch(`${px.url}/wait`, { ...init, signal: client.signal });
    await within(arrived.promise, "The request reaching the upstream");
    client.abort();
    await assert.rejects(res);
    await within(closed.promise, "The upstream connection closing");
    const err = await within(px.failed, "The failure being reported");
    assert.match(err.message, /the client went away/);
  });

  Deno.test(`startRelay() stops the upstream answer when the client goes away midway (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const size = 1024 * MiB;
    const abort = new AbortController();
    const res = await fetch(`${px.url}/big?size=${size}`, { ...init, signal: abort.signal });
    const reader = res.body!.getReader();
    try {
      let bytes = 0;
      while (bytes < 4 * MiB) bytes += (await reader.read()).value!.byteLength;
      abort.abort();
      await reader.closed.catch(() => {});
      const sent = await within(up.big.cancelled.promise, "The upstream answer stopping");
      assert.ok(sent < 100 * MiB, `the upstream sent ${sent} bytes before it stopped`);
      assert.deepEqual(px.errors, [], "a client that leaves is not the upstream's failure");
    } finally {
      up.end();
    }
  });

  Deno.test(`startRelay() holds the upstream back while the client does not read (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const size = 100 * MiB;
    const res = await fetch(`${px.url}/big?size=${size}`, init);
    const reader = res.body!.getReader();
    try {
      await reader.read();
      // Nothing to wait for but time: the upstream would run on without backpressure.
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(up.big.sent < 32 * MiB, `the upstream sent ${up.big.sent} bytes meanwhile`);
      let bytes = 0;
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        bytes += r.value.byteLength;
      }
      assert.ok(bytes > size - 32 * MiB && up.big.sent === size);
    } finally {
      await reader.cancel().catch(() => {});
      up.end();
    }
  });

  Deno.test(`startRelay() streams a 256 MiB answer (${kind.name})`, async () => {
    await using up = startUpstream();
    await using px = startProxy({ upstream: up.url, via: VIA });
    const size = 256 * MiB;
    const expected = generatedHash(size);
    const res = await fetch(`${px.url}/big?size=${size}`, init);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(size));
    const hash = createHash("sha256");
    let bytes = 0;
    let inFlight = 0;
    for await (const chunk of res.body!) {
      hash.update(chunk);
      bytes += chunk.byteLength;
      inFlight = Math.max(inFlight, up.big.sent - bytes);
    }
    assert.equal(bytes, size);
    assert.equal(hash.digest("hex"), expected);
    // What the upstream made but the client had not read yet: socket buffers only.
    // A proxy that held the answer would let the upstream run ahead by all of it.
    // This process's RSS is no measure here: the test files that run beside this
    // one share it. tests/http_network_test.ts bounds a peer process's own RSS.
    assert.ok(inFlight < 32 * MiB, `${(inFlight / MiB).toFixed(1)} MiB were in flight`);
  });
}

Deno.test("startRelay() answers 508 JSON to a request that went through it", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, maxHops: 3 });
  const res = await fetch(`${px.url}/echo`, { headers: { via: `1.1 other, ${VIA} (p2p)` } });
  assert.equal(res.status, 508);
  const body = await res.json();
  assert.equal(body.error.code, "loop_detected");
  assert.match(body.error.message, /'1\.1 p2p-test' is already in its Via/);

  const far = await fetch(`${px.url}/echo`, {
    method: "POST",
    body: "x",
    headers: { via: "1.1 a, 1.1 b, 1.0 c" },
  });
  assert.equal(far.status, 508);
  assert.equal((await far.json()).error.code, "loop_detected");

  const near = await fetch(`${px.url}/echo`, { headers: { via: "1.1 a, 1.1 b" } });
  assert.equal(near.status, 200);
  assert.equal((await near.json()).headers.via, `1.1 a, 1.1 b, ${VIA}`);
  assert.equal(px.errors.length, 2);
});

Deno.test("startRelay() stops a proxy that forwards to itself", async () => {
  let self = "";
  // No `via`: a random one still tells this hop apart.
  await using px = startProxy({ upstream: () => self });
  self = px.url;
  for (const init of [{}, { method: "POST", body: "x" }]) {
    const res = await fetch(`${px.url}/echo`, init);
    assert.equal(res.status, 508);
    assert.equal((await res.json()).error.code, "loop_detected");
    // The inner hop refused it; the outer one relayed that answer.
    assert.match(res.headers.get("via") ?? "", /^1\.1 p2p-[0-9a-f]{8}$/);
  }
  assert.equal(px.errors.length, 2);
});

Deno.test("startRelay() streams a 256 MiB upload", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  const size = 256 * MiB;
  const expected = generatedHash(size);
  let sent = 0;
  let inFlight = 0;
  const res = await upload(`${px.url}/upload`, size, {
    onBlock: (n) => {
      sent += n;
      inFlight = Math.max(inFlight, sent - up.upload.received);
    },
  });
  assert.equal(res.status, 200);
  assert.equal(res.json.bytes, size);
  assert.equal(res.json.sha256, expected);
  assert.equal(res.json.contentLength, String(size));
  assert.ok(inFlight < 32 * MiB, `${(inFlight / MiB).toFixed(1)} MiB were in flight`);
  // The upstream never read more than socket buffers behind the client, so the
  // body was never held whole (RSS: see the 256 MiB answer).
});

Deno.test("startRelay() streams a chunked upload", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  const size = 32 * MiB;
  const res = await upload(`${px.url}/upload`, size, { chunked: true });
  assert.equal(res.status, 200);
  assert.equal(res.json.bytes, size);
  assert.equal(res.json.sha256, generatedHash(size));
  assert.equal(res.json.contentLength, null);
  assert.equal(res.json.transferEncoding, "chunked");
});

Deno.test("startRelay() breaks the upstream upload when the client goes away midway", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  const size = 100 * MiB;
  await assert.rejects(upload(`${px.url}/upload`, size, { stopAt: 8 * MiB }));
  const received = await within(up.upload.broken.promise, "The upstream body breaking");
  assert.ok(received < size, `the upstream took ${received} bytes as a whole body`);
});

Deno.test("startRelay() does not time out a client that is slow to send", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, timeoutMs: 300 });
  const answer = Promise.withResolvers<{ status: number; text: string }>();
  const req = http.request(`${px.url}/echo`, { method: "PUT" }, (res) => {
    let text = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => text += d);
    res.on("end", () => answer.resolve({ status: res.statusCode!, text }));
  });
  req.on("error", answer.reject);
  // Five parts 150 ms apart: 750 ms in all, the upstream waiting on the client.
  for (let i = 0; i < 5; i++) {
    req.write(`part ${i};`);
    await new Promise((r) => setTimeout(r, 150));
  }
  req.end();
  const { status, text } = await answer.promise;
  assert.equal(status, 200);
  assert.equal(JSON.parse(text).body, "part 0;part 1;part 2;part 3;part 4;");
});

for (const kind of KINDS) {
  Deno.test(`startRelay() cuts an answer short when the upstream breaks it off (${kind.name})`, async () => {
    // Over 64 KiB, the head goes ahead of the body: the client sees the cut.
    await using raw = rawServer(async (conn) => {
      await conn.write(
        encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly ten.."),
      );
    });
    await using px = startProxy({ upstream: raw.url, via: VIA });
    const res = await fetch(`${px.url}/short`, { method: kind.method, body: kind.body });
    assert.equal(res.status, 200);
    await assert.rejects(res.arrayBuffer());
    const err = await within(px.failed, "The failure being reported");
    assert.match(err.message, /broke off the answer/);
  });

  Deno.test(`startRelay() answers 502 when the upstream breaks off a small answer, 504 when it stalls in one (${kind.name})`, async () => {
    // Up to 64 KiB, the body is read whole before the head goes out.
    let stall = false;
    await using raw = rawServer(async (conn) => {
      await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten.."));
      // Stalls until the relay gives up on it and closes.
      if (stall) { while (await conn.read(new Uint8Array(1024)) !== null) { /* the request */ } }
    });
    await using px = startProxy({ upstream: raw.url, via: VIA, timeoutMs: 300 });
    const init = { method: kind.method, body: kind.body };
    const broken = await fetch(`${px.url}/short`, init);
    assert.equal(broken.status, 502);
    assert.match((await broken.json()).error.message, /broke off its answer/);
    stall = true;
    const stalled = await fetch(`${px.url}/short`, init);
    assert.equal(stalled.status, 504);
    assert.equal((await stalled.json()).error.code, "gateway_timeout");
    assert.deepEqual(px.errors.map((e) => e.status), [502, 504]);
  });
}

// ---------------------------------------------------------------------------
// Connection-level behaviour, over raw client sockets.

const decoder = new TextDecoder();

/** One answer as a raw client reads it. */
interface RawAnswer {
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
async function rawClient(url: string) {
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
function show(bytes: Uint8Array): string {
  return JSON.stringify(decoder.decode(bytes.subarray(0, 200)));
}

/** A GET that keeps the connection open. */
function get(path: string, extra: string[] = []): string {
  return [`GET ${path} HTTP/1.1`, "Host: relay.test", ...extra, "", ""].join("\r\n");
}

/**
 * An echo app that records the client port of each request, so that distinct ports
 * count distinct upstream connections, and each path it was asked for.
 */
function startCountingUpstream() {
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
function rawUpstream(onConn: (conn: Deno.Conn, index: number) => Promise<void>) {
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
async function readRequestHead(conn: Deno.Conn): Promise<string | undefined> {
  const buf = new Uint8Array(64 * 1024);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return undefined;
    head += decoder.decode(buf.subarray(0, n));
  }
  return head;
}

Deno.test("startRelay() relays a WebSocket both ways after the upstream's 101", async () => {
  const upstreamClosed = Promise.withResolvers<CloseEvent>();
  const received: (string | number)[] = [];
  await using up = listen((req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("no upgrade here");
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => {
      received.push(typeof e.data === "string" ? e.data : e.data.byteLength);
      socket.send(e.data);
    };
    socket.onclose = (e) => upstreamClosed.resolve(e);
    return response;
  });
  await using px = startProxy({ upstream: up.url, via: VIA });

  const ws = new WebSocket(`${px.url.replace("http:", "ws:")}/ws`);
  ws.binaryType = "arraybuffer";
  const messages: (string | ArrayBuffer)[] = [];
  let next = Promise.withResolvers<void>();
  ws.onmessage = (e) => {
    messages.push(e.data);
    next.resolve();
  };
  const clientClosed = Promise.withResolvers<CloseEvent>();
  ws.onclose = (e) => clientClosed.resolve(e);
  const opened = Promise.withResolvers<void>();
  ws.onopen = () => opened.resolve();
  ws.onerror = () => opened.reject(new Error("The WebSocket failed"));
  await within(opened.promise, "The WebSocket opening");

  ws.send("hello ✓");
  await within(next.promise, "The text echo");
  next = Promise.withResolvers();
  const binary = block(7, 100_000);
  ws.send(binary);
  await within(next.promise, "The binary echo");
  assert.equal(messages[0], "hello ✓");
  assert.deepEqual(new Uint8Array(messages[1] as ArrayBuffer), binary);
  assert.deepEqual(received, ["hello ✓", 100_000]);

  ws.close(1000, "done");
  const seen = await within(upstreamClosed.promise, "The upstream seeing the close");
  assert.equal(seen.code, 1000);
  assert.equal(seen.reason, "done");
  assert.equal((await within(clientClosed.promise, "The client closing")).code, 1000);
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() relays an ordinary answer to an Upgrade request and keeps the connection", async () => {
  await using up = listen((req) => new Response(`plain, upgrade ${req.headers.get("upgrade")}`));
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(get("/ws", [
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
  ]));
  const res = await within(c.answer(), "The answer");
  assert.equal(res.status, 200);
  assert.equal(res.text, "plain, upgrade websocket");
  assert.notEqual(res.headers.get("connection")?.toLowerCase(), "upgrade");
  assert.equal(res.headers.get("upgrade"), undefined);
  // Still HTTP on the same connection.
  await c.send(get("/again"));
  const again = await within(c.answer(), "The next answer");
  assert.equal(again.status, 200);
  assert.equal(again.text, "plain, upgrade null");
});

Deno.test("startRelay() reuses upstream connections for requests without a body", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  for (let i = 0; i < 50; i++) {
    await c.send(get(`/get/${i}`));
    const res = await within(c.answer(), `Answer ${i}`);
    assert.equal(res.status, 200);
    assert.equal(res.text, `GET /get/${i} `);
  }
  const getPorts = new Set(up.ports);
  assert.ok(getPorts.size <= 2, `50 GETs took ${getPorts.size} upstream connections`);

  // By design, a request with a body goes on a fresh connection: if a reused one
  // turned out closed, the body could not be sent again.
  up.ports.length = 0;
  for (let i = 0; i < 5; i++) {
    await c.send(`POST /post/${i} HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 4\r\n\r\nbody`);
    const res = await within(c.answer(), `POST answer ${i}`);
    assert.equal(res.text, `POST /post/${i} body`);
  }
  const postPorts = new Set(up.ports);
  assert.equal(postPorts.size, 5, "each request with a body had its own upstream connection");
  for (const port of postPorts) assert.ok(!getPorts.has(port), "a POST reused a connection");
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() retries a request without a body when the pooled upstream connection was closed", async () => {
  const firstClosed = Promise.withResolvers<void>();
  const heads: string[] = [];
  await using up = rawUpstream(async (conn, index) => {
    try {
      const head = await readRequestHead(conn);
      if (head === undefined) return;
      heads.push(head);
      const body = `answer ${index}`;
      // Keep-alive by HTTP/1.1 default, then closed while the relay holds it idle.
      await conn.write(encoder.encode(
        `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n${body}`,
      ));
    } finally {
      conn.close();
      if (index === 0) firstClosed.resolve();
    }
  });
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(get("/one"));
  assert.equal((await within(c.answer(), "The first answer")).text, "answer 0");
  await within(firstClosed.promise, "The upstream closing its connection");
  await c.send(get("/two"));
  const second = await within(c.answer(), "The second answer");
  assert.equal(second.status, 200);
  assert.equal(second.text, "answer 1");
  assert.equal(up.connections, 2);
  assert.match(heads[1], /^GET \/two HTTP\/1\.1\r\n/);
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() answers any bytes with an HTTP answer or silence, and keeps serving (property)", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, headTimeoutMs: 2_000 });
  const port = Number(new URL(px.url).port);
  const line = fc.oneof(
    fc.constantFrom(
      "GET / HTTP/1.1",
      "POST /x HTTP/1.1",
      "Host: relay.test",
      "Content-Length: 3",
      "Content-Length: -1",
      "Transfer-Encoding: chunked",
      "Connection: close",
      "Upgrade: websocket",
      "Expect: 100-continue",
      "",
      "0",
      "abc",
    ),
    fc.string({ maxLength: 40 }),
  );
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.array(line, { maxLength: 8 }).map((ls) => encoder.encode(ls.join("\r\n"))),
    // A head that ends, mostly well-formed, then anything.
    fc.tuple(
      fc.constantFrom("GET /p HTTP/1.1", "POST /p HTTP/1.1", "GET /p HTTP/1.0", "PUT /p HTTP/1.1"),
      fc.array(line, { maxLength: 6 }),
      fc.uint8Array({ maxLength: 64 }),
    ).map(([start, ls, rest]) =>
      concatBytes(encoder.encode([start, ...ls].join("\r\n") + "\r\n\r\n"), rest)
    ),
  );
  await fc.assert(
    fc.asyncProperty(input, async (bytes) => {
      using conn = await Deno.connect({ hostname: LOCAL, port });
      await conn.write(bytes).catch(() => 0);
      // The end of what the client sends: the relay must not wait for more.
      await conn.closeWrite().catch(() => {});
      let text = "";
      const reading = (async () => {
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) return;
          text += decoder.decode(buf.subarray(0, n));
        }
      })();
      await within(reading, "The relay ending the connection");
      assert.match(text, /^(|HTTP\/1\.1 \d{3} [^\r\n]*\r\n[^]*)$/);
    }),
    { numRuns: 300 },
  );
  assert.equal(await (await fetch(`${px.url}/still`)).text(), "GET /still ");
});

Deno.test("Relay.stats() counts requests, relayed requests and failures, and what it holds now", async () => {
  await using up = startCountingUpstream();
  let upstream = up.url;
  await using px = startProxy({ upstream: () => upstream, via: VIA });
  assert.deepEqual(px.stats(), {
    connections: 0,
    requests: 0,
    forwarded: 0,
    failures: 0,
    idleUpstream: 0,
  });
  using c = await rawClient(px.url);
  for (const path of ["/a", "/b", "/c"]) {
    await c.send(get(path));
    await within(c.answer(), `The answer to ${path}`);
  }
  upstream = "not a url";
  await c.send(get("/d"));
  assert.equal((await within(c.answer(), "The answer to /d")).status, 502);
  assert.deepEqual(px.stats(), {
    connections: 1,
    requests: 4,
    forwarded: 3,
    failures: 1,
    idleUpstream: 1,
  });
});

Deno.test("startRelay() closes an upstream connection left idle for upstreamIdleMs", async () => {
  const closed = Promise.withResolvers<void>();
  await using up = rawUpstream(async (conn) => {
    try {
      await readRequestHead(conn);
      await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
      // Keeps the connection open until the relay closes it.
      while (await conn.read(new Uint8Array(1024)).catch(() => null) !== null) { /* nothing */ }
      closed.resolve();
    } finally {
      conn.close();
    }
  });
  await using px = startProxy({ upstream: up.url, via: VIA, upstreamIdleMs: 200 });
  assert.equal(await (await fetch(`${px.url}/x`)).text(), "ok");
  await within(closed.promise, "The idle upstream connection closing");
  assert.equal(up.connections, 1);
});

Deno.test("startRelay() sends a request that must not go twice (POST without a body) on a new connection", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  for (const path of ["/a", "/b"]) {
    await c.send(get(path));
    assert.equal((await within(c.answer(), `The answer to ${path}`)).status, 200);
  }
  for (const path of ["/c", "/d"]) {
    await c.send(`POST ${path} HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 0\r\n\r\n`);
    assert.equal((await within(c.answer(), `The answer to ${path}`)).status, 200);
  }
  // The GETs share one connection; each POST has one of its own.
  assert.equal(new Set(up.ports.slice(0, 2)).size, 1);
  assert.equal(new Set(up.ports).size, 3);
});

Deno.test("startRelay() answers pipelined requests in order", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(
    get("/first") +
      "POST /second HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 3\r\n\r\nabc" +
      "PUT /chunked HTTP/1.1\r\nHost: relay.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "2\r\nde\r\n1;x=y\r\nf\r\n0\r\n\r\n" +
      get("/third", ["Connection: close"]),
  );
  assert.equal((await within(c.answer(), "The first answer")).text, "GET /first ");
  assert.equal((await within(c.answer(), "The second answer")).text, "POST /second abc");
  assert.equal((await within(c.answer(), "The chunked answer")).text, "PUT /chunked def");
  const third = await within(c.answer(), "The third answer");
  assert.equal(third.text, "GET /third ");
  assert.equal(third.headers.get("connection"), "close");
  assert.equal(await within(c.end(), "The relay closing the connection"), "");
  assert.deepEqual(up.paths, ["/first", "/second", "/chunked", "/third"]);
});

Deno.test("startRelay() answers malformed requests with an error and keeps serving", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  // The head limit is reached with no end of head in sight; exactly the limit is
  // sent, so the relay reads all of it before it answers (unread bytes would make
  // its close a reset, which may discard the answer).
  const start = "GET /big HTTP/1.1\r\nHost: relay.test\r\nX-Big: ";
  const huge = start + "a".repeat(MAX_HEAD - start.length);
  const smuggled = "GET /smuggled HTTP/1.1\r\nHost: relay.test\r\n\r\n";
  const cases = [
    { what: "garbage", request: "\x16\x03\x01 garbage\r\n\r\n", status: 400, code: "bad_request" },
    {
      what: "HTTP/2.0",
      request: "GET /v2 HTTP/2.0\r\nHost: relay.test\r\n\r\n",
      status: 505,
      code: "version_not_supported",
    },
    {
      what: "a header without a colon",
      request: "GET /colon HTTP/1.1\r\nHost relay.test\r\n\r\n",
      status: 400,
      code: "bad_request",
    },
    { what: "a head over 64 KiB", request: huge, status: 431, code: "head_too_large" },
    {
      what: "Content-Length with Transfer-Encoding",
      request: "POST /cl-te HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 5\r\n" +
        `Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
      status: 400,
      code: "ambiguous_length",
    },
    {
      what: "Content-Length '5, 6'",
      request:
        `POST /cl-cl HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 5, 6\r\n\r\nhello${smuggled}`,
      status: 400,
      code: "bad_content_length",
    },
    {
      what: "two Content-Length fields",
      request: "POST /cl2 HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 5\r\n" +
        `Content-Length: 40\r\n\r\nhello${smuggled}`,
      status: 400,
      code: "bad_content_length",
    },
    {
      what: "Transfer-Encoding not ending in chunked",
      request:
        `POST /te HTTP/1.1\r\nHost: relay.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
      status: 400,
      code: "bad_transfer_encoding",
    },
  ];
  for (const { what, request, status, code } of cases) {
    using c = await rawClient(px.url);
    await c.send(request);
    const res = await within(c.answer(), `The answer to ${what}`);
    assert.equal(res.status, status, what);
    assert.equal(res.headers.get("connection"), "close", what);
    assert.equal(res.headers.get("content-type"), "application/json", what);
    const body = JSON.parse(res.text);
    assert.deepEqual(Object.keys(body), ["error"], what);
    assert.equal(body.error.code, code, what);
    assert.equal(typeof body.error.message, "string", what);
    assert.equal(await within(c.end(), `The relay closing after ${what}`), "", what);

    const ok = await fetch(`${px.url}/ok`);
    assert.equal(await ok.text(), "GET /ok ", `after ${what}`);
  }
  assert.deepEqual(up.paths, cases.map(() => "/ok"));
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() answers an HTTP/1.0 request and closes the connection after it", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send("GET /old HTTP/1.0\r\nHost: relay.test\r\n\r\n");
  const res = await within(c.answer(), "The answer");
  assert.equal(res.status, 200);
  assert.equal(res.text, "GET /old ");
  assert.equal(res.headers.get("connection"), "close");
  assert.equal(await within(c.end(), "The relay closing the connection"), "");
});

Deno.test("startRelay() relays a chunked answer with its chunks as they are", async () => {
  const chunked = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
  await using raw = rawServer(async (conn) => {
    await conn.write(encoder.encode(
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: 1\r\n\r\n${chunked}`,
    ));
  });
  await using px = startProxy({ upstream: raw.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(get("/chunks"));
  const res = await within(c.answer(), "The answer");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  assert.equal(res.headers.get("x-app"), "1");
  assert.equal(res.text, chunked);
  assert.deepEqual(px.errors, []);
});

/**
 * An upstream that answers 413 before reading the body, then reads and drops what
 * comes until the relay closes, as a server should: closing with the body unread
 * would reset the relay's connection before the relay has read the answer.
 */
function earlyAnswerUpstream() {
  return rawServer(async (conn) => {
    await conn.write(encoder.encode(
      "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!",
    ));
    const buf = new Uint8Array(64 * 1024);
    while (await conn.read(buf).catch(() => null) !== null) { /* dropped */ }
  });
}

Deno.test("startRelay() ends the client connection when the upstream answers before taking the whole body", async () => {
  await using raw = earlyAnswerUpstream();
  await using px = startProxy({ upstream: raw.url, via: VIA });
  using c = await rawClient(px.url);
  // Announces a megabyte, sends ten bytes, then waits.
  await c.send(
    "POST /up HTTP/1.1\r\nHost: relay.test\r\nContent-Length: 1000000\r\n\r\n0123456789",
  );
  const res = await within(c.answer(), "The early answer");
  assert.equal(res.status, 413);
  assert.equal(res.text, "too big!");
  assert.equal(await within(c.end(), "The relay closing the connection"), "");
});

Deno.test("startRelay() lets a client that keeps sending its body read the early answer (lingering close)", async () => {
  await using raw = earlyAnswerUpstream();
  await using px = startProxy({ upstream: raw.url, via: VIA });
  using c = await rawClient(px.url);
  const size = 4 * MiB;
  // The whole body goes out before the client reads anything, as a simple client does.
  const sending = c.send(
    `POST /up HTTP/1.1\r\nHost: relay.test\r\nContent-Length: ${size}\r\n\r\n` + "x".repeat(size),
  ).catch((err) => err);
  const res = await within(c.answer(), "The early answer");
  assert.equal(res.status, 413);
  assert.equal(res.text, "too big!");
  assert.equal(await within(sending, "The body going out"), undefined, "the relay took it all");
  assert.equal(await within(c.end(), "The relay ending the connection"), "");
});

Deno.test("startRelay() keeps every transfer coding of a body it relays, both ways", async () => {
  const heads: string[] = [];
  const chunked = "3\r\nabc\r\n0\r\n\r\n";
  await using raw = rawServer(async (conn, head) => {
    heads.push(head);
    await conn.write(encoder.encode(
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked}`,
    ));
  });
  await using px = startProxy({ upstream: raw.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(
    "POST /coded HTTP/1.1\r\nHost: relay.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
      chunked,
  );
  const res = await within(c.answer(), "The answer");
  assert.equal(res.headers.get("transfer-encoding"), "gzip, chunked");
  assert.equal(res.text, chunked);
  assert.match(heads[0], /\r\ntransfer-encoding: gzip, chunked\r\n/i);
});

Deno.test("startRelay() relays a close-delimited answer whole and closes the client connection", async () => {
  const body = decoder.decode(block(3, 300_000).map((b) => 0x61 + (b % 26)));
  await using raw = rawServer(async (conn) => {
    const bytes = encoder.encode(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n${body}`);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
  });
  await using px = startProxy({ upstream: raw.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(get("/until-close"));
  const res = await within(c.answer(), "The answer");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("connection"), "close");
  assert.equal(res.headers.get("content-length"), undefined);
  assert.equal(res.text.length, body.length);
  assert.ok(res.text === body, "the body changed on the way");
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() gives the client the answer head before the upstream has the whole body", async () => {
  const headSeen = Promise.withResolvers<void>();
  await using up = listen(() => {
    const parts = ["first part;", "second part"];
    const body = new ReadableStream<Uint8Array>({
      async pull(ctrl) {
        if (parts.length === 1) await headSeen.promise;
        const part = parts.shift();
        if (part === undefined) return ctrl.close();
        ctrl.enqueue(encoder.encode(part));
      },
    }, { highWaterMark: 0 });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  }, () => headSeen.resolve());
  await using px = startProxy({ upstream: up.url, via: VIA });
  const res = await within(fetch(`${px.url}/stream`), "The answer head");
  assert.equal(res.status, 200);
  headSeen.resolve();
  assert.equal(await within(res.text(), "The answer body"), "first part;second part");
});

Deno.test("startRelay() relays Expect: 100-continue and the interim 100 answer", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA });
  using c = await rawClient(px.url);
  await c.send(
    "POST /upload HTTP/1.1\r\nHost: relay.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
  );
  const interim = await within(c.head(), "The 100 Continue");
  assert.match(interim, /^HTTP\/1\.1 100 Continue\r\n/);
  await c.send("hello");
  const res = await within(c.answer(), "The final answer");
  assert.equal(res.status, 200);
  assert.equal(res.text, "POST /upload hello");
  assert.deepEqual(px.errors, []);
});

Deno.test("startRelay() closes a connection whose request head does not come in time", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, headTimeoutMs: 200 });
  using c = await rawClient(px.url);
  await c.send("GET /half HTTP/1.1\r\nHo");
  assert.equal(await within(c.end(), "The relay closing the connection", 3_000), "");
  assert.deepEqual(up.paths, []);
  // A prompt client is served.
  assert.equal(await (await fetch(`${px.url}/ok`)).text(), "GET /ok ");
});

Deno.test("startRelay() closes a keep-alive connection idle after its answer", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, idleTimeoutMs: 200 });
  using c = await rawClient(px.url);
  await c.send(get("/first"));
  const res = await within(c.answer(), "The answer");
  assert.equal(res.text, "GET /first ");
  assert.notEqual(res.headers.get("connection"), "close");
  assert.equal(await within(c.end(), "The relay closing the idle connection", 3_000), "");
});

Deno.test("startRelay() closes connections over maxConnections at once", async () => {
  await using up = startCountingUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, maxConnections: 2 });
  using a = await rawClient(px.url);
  using b = await rawClient(px.url);
  // Both are served, so both are counted before the third comes.
  for (const [name, c] of [["a", a], ["b", b]] as const) {
    await c.send(get(`/${name}`));
    assert.equal((await within(c.answer(), `The answer to ${name}`)).text, `GET /${name} `);
  }
  using third = await rawClient(px.url);
  await third.send(get("/third"));
  assert.equal(await within(third.end(), "The relay closing the third connection"), "");
  for (const [name, c] of [["a", a], ["b", b]] as const) {
    await c.send(get(`/${name}-again`));
    const res = await within(c.answer(), `The next answer to ${name}`);
    assert.equal(res.text, `GET /${name}-again `);
  }
  assert.deepEqual(up.paths, ["/a", "/b", "/a-again", "/b-again"]);
});

Deno.test("startRelay() close() ends idle connections at once and busy ones after the grace period", async () => {
  const release = Promise.withResolvers<void>();
  const busyUpstreamClosed = Promise.withResolvers<void>();
  await using up = rawUpstream(async (conn) => {
    try {
      const head = await readRequestHead(conn);
      if (head === undefined) return;
      if (head.startsWith("GET /busy ")) {
        // A little of the body, then nothing until the relay gives up on it. (The
        // relay holds the head of a body of up to 64 KiB until all of it is there.)
        await conn.write(
          encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nfirst"),
        );
        await Promise.race([conn.read(new Uint8Array(1)).catch(() => null), release.promise]);
        busyUpstreamClosed.resolve();
      } else {
        await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
      }
    } finally {
      conn.close();
    }
  });
  await using px = startProxy({ upstream: up.url, via: VIA });
  try {
    using idle = await rawClient(px.url);
    await idle.send(get("/idle"));
    assert.equal((await within(idle.answer(), "The idle client's answer")).text, "ok");
    using busy = await rawClient(px.url);
    await busy.send(get("/busy"));
    const head = await within(busy.head(), "The busy answer's head");
    assert.match(head, /^HTTP\/1\.1 200 /);

    let closed = false;
    const closing = px.close(1_000).then(() => {
      closed = true;
    });
    let busyEnded = false;
    const busyEnd = busy.end().then((rest) => {
      busyEnded = true;
      return rest;
    });
    assert.equal(await within(idle.end(), "The idle connection ending", 500), "");
    assert.ok(!busyEnded, "the busy connection ended with the idle one");
    assert.ok(!closed, "close() resolved before the busy connection ended");
    // The busy answer is cut short at the end of the grace period.
    const rest = await within(busyEnd, "The busy connection ending", 4_000);
    assert.ok(rest.length < 1_000_000, "the answer was completed");
    await within(closing, "close() resolving", 2_000);
    await within(busyUpstreamClosed.promise, "The busy upstream connection closing");
    // Idempotent.
    await px.close();
  } finally {
    release.resolve();
  }
});
