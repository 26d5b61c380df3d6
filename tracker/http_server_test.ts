import assert from "node:assert/strict";
import { DEFAULT_LISTENER_LIMITS, listen } from "./http_server.ts";
import { rawClient } from "../lib/http_relay/_relay_fixtures.ts";

/** A listener on 127.0.0.1 whose handler answers by path. */
function testListener() {
  return listen({
    hostname: "127.0.0.1",
    port: 0,
    limits: DEFAULT_LISTENER_LIMITS,
    handler: (req, remote) => {
      const path = new URL(req.url).pathname;
      if (path === "/stream") {
        const parts = ["one ", "two ", "three"].map((s) => new TextEncoder().encode(s));
        return new Response(ReadableStream.from(parts), {
          headers: { "content-type": "application/octet-stream" },
        });
      }
      if (path === "/refuse") return Response.json({ error: "no" }, { status: 413 });
      return Response.json({
        name: "café ☕",
        host: req.headers.get("host"),
        from: remote.hostname,
        method: req.method,
      });
    },
  });
}

Deno.test("listen() writes a JSON answer whole with its byte length, and keeps the connection", async () => {
  const server = await testListener();
  try {
    using client = await rawClient(`http://127.0.0.1:${server.addr.port}`);
    for (let i = 0; i < 2; i++) {
      await client.send("GET /x HTTP/1.1\r\nHost: tracker.test\r\n\r\n");
      const answer = await client.answer();
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get("content-type"), "application/json");
      assert.equal(Number(answer.headers.get("content-length")), answer.body.byteLength);
      assert.deepEqual(JSON.parse(answer.text), {
        name: "café ☕",
        host: "tracker.test",
        from: "127.0.0.1",
        method: "GET",
      });
    }
    await client.send("HEAD /x HTTP/1.1\r\nHost: tracker.test\r\n\r\n");
    const head = await client.answer("HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.byteLength, 0);
    await client.send("GET /stream HTTP/1.1\r\nHost: tracker.test\r\n\r\n");
    const streamed = await client.answer();
    assert.equal(streamed.headers.get("transfer-encoding"), "chunked");
    assert.match(streamed.text, /one [^]*two [^]*three/);
  } finally {
    await server.shutdown();
  }
});

Deno.test("listen() closes the connection after an answer that left the request body unread", async () => {
  const server = await testListener();
  try {
    using client = await rawClient(`http://127.0.0.1:${server.addr.port}`);
    await client.send(
      "POST /refuse HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nabc",
    );
    const answer = await client.answer();
    assert.equal(answer.status, 413);
    assert.equal(answer.headers.get("connection"), "close");
    assert.deepEqual(JSON.parse(answer.text), { error: "no" });
  } finally {
    await server.shutdown();
  }
});
