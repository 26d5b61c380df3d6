import assert from "node:assert/strict";
import { Deadlines } from "./deadlines.ts";
import { ProxyError } from "./errors.ts";
import { Exchange, type ExchangeContext } from "./exchange.ts";
import { requestFraming } from "./framing.ts";
import { parseRequestHead } from "./head.ts";
import { Inbox, writeAll } from "./inbox.ts";
import type { Upstream } from "./pool.ts";
import { hopOf, parseUpstream } from "./rewrite.ts";
import { socketPair } from "./_socket_pair.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A fake relay: real deadlines, and what the exchange reports and releases. */
function fakeContext(timeoutMs = 2_000) {
  const failures: ProxyError[] = [];
  const released: Upstream[] = [];
  const deadlines = new Deadlines(5);
  const ctx: ExchangeContext = {
    hop: hopOf("1.1 p2p-test"),
    timeoutMs,
    deadlines,
    failed: (err) => failures.push(err),
    release: (up) => released.push(up),
    proto: "http",
  };
  return { ctx, failures, released, [Symbol.dispose]: () => deadlines.stop() };
}

/**
 * An exchange for `request` (sent by a client socket) aimed at an upstream socket
 * pair: the test plays both the client and the upstream.
 */
async function setUp(ctx: ExchangeContext, request: string, reused = false) {
  const client = await socketPair();
  const upstream = await socketPair();
  const inbox = new Inbox(client.server);
  await writeAll(client.client, encoder.encode(request));
  const end = request.indexOf("\r\n\r\n") + 4;
  while (inbox.length < end) await inbox.fill();
  const head = parseRequestHead(inbox.bytes(end));
  inbox.consume(end);
  const [path, search] = head.target.split(/(?=\?)/);
  const x = new Exchange(ctx, inbox, head, requestFraming(head), path, search ?? "", "127.0.0.9");
  x.aim(parseUpstream("http://127.0.0.1:5810"), "", [], "relay:1");
  const up: Upstream = {
    conn: upstream.client,
    inbox: new Inbox(upstream.client),
    key: "127.0.0.1:5810",
    reused,
    idleSince: 0,
  };
  return {
    x,
    up,
    /** The client's end. */
    client: client.client,
    /** The upstream server's end. */
    server: upstream.server,
    async [Symbol.asyncDispose]() {
      await client[Symbol.asyncDispose]();
      await upstream[Symbol.asyncDispose]();
    },
  };
}

/** Reads from `conn` until `text` has come (or the connection ends). */
async function readUntil(conn: Deno.Conn, text: string): Promise<string> {
  let got = "";
  const buf = new Uint8Array(64 * 1024);
  while (!got.includes(text)) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    got += decoder.decode(buf.subarray(0, n));
  }
  return got;
}

Deno.test("Exchange.forward() sends the rewritten head, relays the answer and releases the upstream", async () => {
  using fake = fakeContext();
  await using t = await setUp(fake.ctx, "GET /a?b HTTP/1.1\r\nHost: peer\r\n\r\n");
  const forwarding = t.x.forward(t.up);
  const head = await readUntil(t.server, "\r\n\r\n");
  assert.match(head, /^GET \/a\?b HTTP\/1\.1\r\nhost: 127\.0\.0\.1:5810\r\n/);
  assert.match(head, /x-forwarded-for: 127\.0\.0\.9\r\n[^]*via: 1\.1 p2p-test\r\n/);
  await writeAll(t.server, encoder.encode("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"));
  assert.equal(await forwarding, true);
  assert.equal(
    await readUntil(t.client, "hi"),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nvia: 1.1 p2p-test\r\n\r\nhi",
  );
  assert.deepEqual(fake.released, [t.up]);
  assert.deepEqual(fake.failures, []);
});

Deno.test("Exchange.forward() resolves 'retry' when a reused upstream connection closed unanswered", async () => {
  using fake = fakeContext();
  await using t = await setUp(fake.ctx, "GET / HTTP/1.1\r\nHost: peer\r\n\r\n", true);
  const forwarding = t.x.forward(t.up);
  await readUntil(t.server, "\r\n\r\n");
  t.server.close();
  assert.equal(await forwarding, "retry");
  assert.deepEqual(fake.released, []);
});

Deno.test("Exchange.forward() resolves a 504 ProxyError when the upstream does not answer in time", async () => {
  using fake = fakeContext(30);
  await using t = await setUp(fake.ctx, "GET /slow HTTP/1.1\r\nHost: peer\r\n\r\n");
  const result = await t.x.forward(t.up);
  assert.ok(result instanceof ProxyError);
  assert.equal(result.status, 504);
  assert.match(result.message, /GET \/slow.*did not answer within 30 ms/);
});

Deno.test("Exchange.forward() reports an answer the upstream breaks off, and the client connection goes no further", async () => {
  using fake = fakeContext();
  await using t = await setUp(fake.ctx, "GET /big HTTP/1.1\r\nHost: peer\r\n\r\n");
  const forwarding = t.x.forward(t.up);
  await readUntil(t.server, "\r\n\r\n");
  const size = 1 << 20;
  await writeAll(t.server, encoder.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`));
  await writeAll(t.server, new Uint8Array(1000));
  t.server.close();
  assert.equal(await forwarding, false);
  assert.equal(fake.failures.length, 1);
  assert.match(fake.failures[0].message, /broke off the answer to 'GET \/big'/);
});
