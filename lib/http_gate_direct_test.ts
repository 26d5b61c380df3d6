import assert from "node:assert/strict";
import { type GateLimits, startGate } from "./http_gate.ts";
import { DIRECT_BODY_MAX } from "./http_gate_direct.ts";
import { rawClient } from "./http_relay/_relay_fixtures.ts";

const LIMITS: GateLimits = {
  connectionsPerAddress: 8,
  maxConnections: 100,
  headTimeoutMs: 300,
  requestTimeoutMs: 600,
  idleTimeoutMs: 300,
  maxHeadBytes: 1024,
};

/**
 * A gate whose handler echoes method, path and body length, and answers `/stream`
 * in three streamed parts, `/empty` with 204, `/cookies` with two `Set-Cookie`
 * fields, `/slow` after 800 ms (past the idle time) and `/boom` by throwing.
 */
async function testGate() {
  const errors: unknown[] = [];
  const gate = await startGate({
    hostname: "127.0.0.1",
    port: 0,
    limits: LIMITS,
    onError: (err) => errors.push(err),
    handler: async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/stream") {
        const parts = ["one,", "two,", "three"];
        return new Response(
          new ReadableStream({
            async pull(c) {
              await new Promise((r) => setTimeout(r, 5));
              const next = parts.shift();
              if (next === undefined) c.close();
              else c.enqueue(new TextEncoder().encode(next));
            },
          }),
        );
      }
      if (path === "/empty") return new Response(null, { status: 204 });
      if (path === "/cookies") {
        const headers = new Headers([["set-cookie", "a=1"], ["set-cookie", "b=2"]]);
        return new Response("ok", { headers });
      }
      if (path === "/slow") await new Promise((r) => setTimeout(r, 800));
      if (path === "/boom") throw new Error("handler failed");
      const body = new Uint8Array(await req.arrayBuffer());
      return Response.json({ method: req.method, path, length: body.byteLength, host: req.url });
    },
  });
  return {
    gate,
    errors,
    url: `http://127.0.0.1:${gate.addr.port}`,
    async [Symbol.asyncDispose]() {
      await gate.shutdown(100);
    },
  };
}

Deno.test("the gate answers small requests itself, relays large, chunked and Expect ones, and keeps answers in order after a relay", async () => {
  await using g = await testGate();
  using client = await rawClient(g.url);
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.deepEqual(JSON.parse((await client.answer()).text), {
    method: "GET",
    path: "/a",
    length: 0,
    host: "http://x/a",
  });
  await client.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  assert.equal(JSON.parse((await client.answer()).text).length, 5);
  assert.deepEqual(g.gate.counts, { directRequests: 2, relayedConnections: 0 });
  // A chunked request goes through the inner server; the small one sent right behind
  // it too, so that its answer cannot overtake.
  await client.send(
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
      "GET /d HTTP/1.1\r\nHost: x\r\n\r\n",
  );
  assert.equal(JSON.parse((await client.answer()).text).path, "/c");
  assert.equal(JSON.parse((await client.answer()).text).path, "/d");
  assert.deepEqual(g.gate.counts, { directRequests: 2, relayedConnections: 1 });

  const large = DIRECT_BODY_MAX + 1;
  using other = await rawClient(g.url);
  await other.send(`PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: ${large}\r\n\r\n`);
  await other.send(new Uint8Array(large));
  assert.equal(JSON.parse((await other.answer()).text).length, large);
  using third = await rawClient(g.url);
  await third.send(
    "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
  );
  const cont = await third.answer();
  assert.equal(cont.status, 100);
  await third.send("hi");
  assert.equal(JSON.parse((await third.answer()).text).length, 2);
  assert.deepEqual(g.gate.counts, { directRequests: 2, relayedConnections: 3 });
});

Deno.test("the gate writes a handler's answer: streamed bodies chunked, 204 without a body, each Set-Cookie, and Connection: close when asked", async () => {
  await using g = await testGate();
  using client = await rawClient(g.url);
  await client.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  const streamed = await client.answer();
  assert.equal(streamed.headers.get("transfer-encoding"), "chunked");
  assert.equal(streamed.text, "4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n");
  await client.send("DELETE /empty HTTP/1.1\r\nHost: x\r\n\r\n");
  const empty = await client.answer();
  assert.equal(empty.status, 204);
  assert.equal(empty.headers.get("content-length"), undefined);
  await client.send("GET /cookies HTTP/1.1\r\nHost: x\r\n\r\n");
  const cookies = await client.answer();
  assert.equal(cookies.headers.get("set-cookie"), "a=1, b=2");
  assert.equal(cookies.headers.get("content-length"), "2");
  assert.equal(cookies.text, "ok");
  // A slow handler is not idleness.
  await client.send("GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const last = await client.answer();
  assert.equal(last.status, 200);
  assert.equal(last.headers.get("connection"), "close");
  assert.equal(await client.end(), "");
  // HTTP/1.0 without keep-alive: the answer, then the close.
  using old = await rawClient(g.url);
  await old.send("GET /a HTTP/1.0\r\n\r\n");
  const answer = await old.answer();
  assert.equal(JSON.parse(answer.text).host, `http://127.0.0.1:${g.gate.addr.port}/a`);
  assert.equal(await old.end(), "");
  assert.equal(g.gate.counts.relayedConnections, 0);
});

Deno.test("the gate answers a failing handler with 503 and serves on, and a Host that is not a host with 400", async () => {
  await using g = await testGate();
  using client = await rawClient(g.url);
  await client.send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
  const failed = await client.answer();
  assert.equal(failed.status, 503);
  assert.equal(JSON.parse(failed.text).error.code, "unavailable");
  assert.equal(g.errors.length, 1);
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal((await client.answer()).status, 200);
  for (const host of ["x/y", "a@b", "x y"]) {
    using bad = await rawClient(g.url);
    await bad.send(`GET /a HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const refused = await bad.answer();
    assert.equal(refused.status, 400, host);
    assert.equal(JSON.parse(refused.text).error.code, "bad_request");
    assert.equal(await bad.end(), "");
  }
});
