import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as http from "node:http";
import {
  block,
  decoder,
  earlyAnswerUpstream,
  encoder,
  generatedHash,
  get,
  KINDS,
  listen,
  LOCAL,
  MiB,
  rawClient,
  rawServer,
  startCountingUpstream,
  startProxy,
  startUpstream,
  upload,
  VIA,
  within,
} from "./_relay_fixtures.ts";

for (const kind of KINDS) {
  const init = { method: kind.method, body: kind.body };

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
