import assert from "node:assert/strict";
import { startRelay } from "./mod.ts";
import { testCert } from "./_tls_fixture.ts";
import {
  GZIPPED,
  KINDS,
  LOCAL,
  rawExchange,
  rawRequest,
  rawServer,
  startProxy,
  startUpstream,
  VIA,
} from "./_relay_fixtures.ts";

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

Deno.test("startRelay() drops and adds the header fields a route names, each way", async () => {
  const seen = Promise.withResolvers<Headers>();
  await using up = Deno.serve({ hostname: LOCAL, port: 0, onListen() {} }, (req) => {
    seen.resolve(req.headers);
    const headers = new Headers({ "content-type": "text/html", "x-kept": "1" });
    headers.append("set-cookie", "p2p_token=stolen; Path=/");
    headers.append("content-security-policy", "default-src 'self'");
    return new Response("<p>hi</p>", { headers });
  });
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    via: VIA,
    route: () => ({
      upstream: `http://${LOCAL}:${up.addr.port}`,
      dropRequestHeaders: ["Cookie", "authorization"],
      dropAnswerHeaders: ["set-cookie"],
      answerHeaders: { "content-security-policy": "sandbox allow-scripts" },
    }),
  });
  const res = await fetch(relay.url, {
    headers: { cookie: "p2p_token=secret", authorization: "Bearer secret", "x-mine": "2" },
  });
  assert.equal(await res.text(), "<p>hi</p>");
  const sent = await seen.promise;
  assert.equal(sent.get("cookie"), null);
  assert.equal(sent.get("authorization"), null);
  assert.equal(sent.get("x-mine"), "2");
  assert.equal(res.headers.get("set-cookie"), null);
  assert.equal(res.headers.get("x-kept"), "1");
  // Both policies hold: the upstream's own and the added sandbox.
  assert.equal(
    res.headers.get("content-security-policy"),
    "default-src 'self', sandbox allow-scripts",
  );
});

Deno.test("startRelay() with a certificate serves HTTPS and tells the upstream so", async () => {
  using tls = await testCert();
  const seen = Promise.withResolvers<Headers>();
  await using up = Deno.serve({ hostname: LOCAL, port: 0, onListen() {} }, (req) => {
    seen.resolve(req.headers);
    return new Response("secret", { headers: { location: `http://${LOCAL}:1/x` } });
  });
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    via: VIA,
    tls: { cert: tls.cert, key: tls.key },
    route: () => ({ upstream: `http://${LOCAL}:${up.addr.port}` }),
  });
  assert.equal(relay.url, `https://${LOCAL}:${relay.addr.port}`);
  const res = await fetch(`${relay.url}/page`, { client: tls.client });
  assert.equal(await res.text(), "secret");
  const sent = await seen.promise;
  assert.equal(sent.get("x-forwarded-proto"), "https");
  assert.equal(sent.get("x-forwarded-host"), `${LOCAL}:${relay.addr.port}`);
  // Plain HTTP on the TLS port gets nothing.
  const plain = await fetch(`http://${LOCAL}:${relay.addr.port}/`).then(
    (r) => r.body?.cancel().then(() => r.status),
    () => "refused",
  );
  assert.equal(plain, "refused");
});

Deno.test("startRelay() answers 429 to a connection over the per-address cap, and serves again once one closes", async () => {
  await using up = startUpstream();
  await using px = startProxy({ upstream: up.url, via: VIA, maxConnectionsPerAddress: 2 });
  const held = [
    await Deno.connect({ hostname: LOCAL, port: px.addr.port }),
    await Deno.connect({ hostname: LOCAL, port: px.addr.port }),
  ];
  try {
    const third = await Deno.connect({ hostname: LOCAL, port: px.addr.port });
    const answer = new TextDecoder().decode(await new Response(third.readable).arrayBuffer());
    assert.match(answer, /^HTTP\/1\.1 429 /);
    assert.match(answer, /"code":"too_many_connections"/);
    assert.match(answer, /at most 2 at once/);
  } finally {
    for (const c of held.splice(0)) c.close();
  }
  // The relay notices the two closes on its next read of each: then it serves again.
  let res: Response | undefined;
  for (let attempt = 0; !res || res.status === 429; attempt++) {
    await res?.body?.cancel();
    if (attempt > 50) throw new Error("Still refused after the held connections closed");
    if (attempt > 0) await new Promise((r) => setTimeout(r, 50));
    res = await fetch(`${px.url}/x`);
  }
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
