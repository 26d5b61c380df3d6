import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_HEAD } from "./head.ts";
import { concatBytes } from "../../proto/bytes.ts";
import {
  block,
  decoder,
  encoder,
  get,
  listen,
  LOCAL,
  rawClient,
  rawUpstream,
  readRequestHead,
  startCountingUpstream,
  startProxy,
  VIA,
  within,
} from "./_relay_fixtures.ts";

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
