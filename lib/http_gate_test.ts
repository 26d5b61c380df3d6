import assert from "node:assert/strict";
import { type GateLimits, type GateRefusal, startGate } from "./http_gate.ts";
import { rawClient } from "./http_relay/_relay_fixtures.ts";

const LIMITS: GateLimits = {
  connectionsPerAddress: 3,
  maxConnections: 100,
  headTimeoutMs: 300,
  requestTimeoutMs: 600,
  idleTimeoutMs: 300,
  maxHeadBytes: 1024,
};

/** A gate on 127.0.0.1 whose handler echoes what it saw; `/slow` answers after 800 ms. */
async function echoGate(limits: Partial<GateLimits> = {}) {
  const refusals: GateRefusal[] = [];
  const gate = await startGate({
    hostname: "127.0.0.1",
    port: 0,
    limits: { ...LIMITS, ...limits },
    onRefused: (r) => refusals.push(r),
    handler: async (req, remote) => {
      const path = new URL(req.url).pathname;
      if (path === "/slow") await new Promise((r) => setTimeout(r, 800));
      return Response.json({
        method: req.method,
        path,
        body: await req.text(),
        from: remote.hostname,
      });
    },
  });
  return {
    gate,
    refusals,
    url: `http://127.0.0.1:${gate.addr.port}`,
    async [Symbol.asyncDispose]() {
      await gate.shutdown(100);
    },
  };
}

Deno.test("startGate() passes requests with their bodies to the handler with the client's address, keep-alive", async () => {
  await using g = await echoGate();
  using client = await rawClient(g.url);
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.deepEqual(JSON.parse((await client.answer()).text), {
    method: "GET",
    path: "/a",
    body: "",
    from: "127.0.0.1",
  });
  await client.send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  assert.equal(JSON.parse((await client.answer()).text).body, "hello");
  await client.send(
    "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
  );
  assert.equal(JSON.parse((await client.answer()).text).body, "abcde");
  // A handler slower than the idle time still answers: the connection is not idle.
  await client.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal((await client.answer()).status, 200);
  assert.deepEqual(g.refusals, []);
});

Deno.test("startGate() answers a head that trickles past the head timeout with 408 JSON, and closes", async () => {
  await using g = await echoGate();
  using client = await rawClient(g.url);
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n");
  const answer = await client.answer();
  assert.equal(answer.status, 408);
  assert.equal(JSON.parse(answer.text).error.code, "timeout");
  assert.equal(await client.end(), "");
  assert.deepEqual(g.refusals.map((r) => [r.status, r.code, r.remote]), [
    [408, "timeout", "127.0.0.1"],
  ]);
});

Deno.test("startGate() answers a body that does not arrive within the request timeout with 408", async () => {
  await using g = await echoGate();
  using client = await rawClient(g.url);
  await client.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  assert.equal((await client.answer()).status, 408);
});

Deno.test("startGate() closes an idle keep-alive connection without an answer", async () => {
  await using g = await echoGate();
  using client = await rawClient(g.url);
  await client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  assert.equal((await client.answer()).status, 200);
  assert.equal(await client.end(), "", "closed after the idle time, nothing sent");
});

Deno.test("startGate() answers malformed and oversized heads with JSON 400 and 431 before the handler", async () => {
  await using g = await echoGate();
  for (
    const [request, status, code] of [
      ["\x00\xffNOT HTTP\r\n\r\n", 400, "bad_request"],
      [`GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(2000)}\r\n\r\n`, 431, "head_too_large"],
      ["GET http://elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"],
      [
        "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
      ],
    ] as const
  ) {
    using client = await rawClient(g.url);
    await client.send(request);
    const answer = await client.answer();
    assert.equal(answer.status, status, request.slice(0, 40));
    assert.equal(answer.headers.get("content-type"), "application/json");
    if (code) assert.equal(JSON.parse(answer.text).error.code, code);
  }
});

Deno.test("startGate() answers a connection over the per-address cap with 429 JSON, and serves again once one closes", async () => {
  await using g = await echoGate({ idleTimeoutMs: 5000, headTimeoutMs: 5000 });
  const held = [await rawClient(g.url), await rawClient(g.url), await rawClient(g.url)];
  try {
    for (const c of held) {
      await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
      assert.equal((await c.answer()).status, 200);
    }
    using fourth = await rawClient(g.url);
    const refused = await fourth.answer();
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(refused.text).error.code, "too_many_connections");
  } finally {
    for (const c of held) c[Symbol.dispose]();
  }
  // The gate notices the closes on its next read of each: then it serves again.
  let status = 429;
  for (let i = 0; i < 50 && status === 429; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 20));
    using c = await rawClient(g.url);
    await c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    status = (await c.answer()).status;
  }
  assert.equal(status, 200);
});

Deno.test("startGate()'s inner server answers 403 to a connection that did not come through the gate", async () => {
  await using g = await echoGate();
  const res = await fetch(`http://127.0.0.1:${g.gate.inner.port}/a`);
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error.code, "forbidden");
});
