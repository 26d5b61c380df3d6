import assert from "node:assert/strict";
import * as net from "node:net";
import { LOCAL, rawClient } from "./_relay_fixtures.ts";
import { type RelayRefusal, startRelay } from "./mod.ts";

/** A relay on 127.0.0.1 that answers every request itself, with a request rate. */
function rateLimitedRelay(refusals: RelayRefusal[]) {
  return startRelay({
    hostname: LOCAL,
    port: 0,
    route: (req) => ({ answer: { status: 200, json: { ok: true, from: req.remoteAddr } } }),
    requestsPerSecond: 2,
    requestBurst: 3,
    onRefused: (r) => refusals.push(r),
  });
}

/** One `GET path` sent from `localAddress` (another 127.0.0.x), and the status it got. */
function statusFrom(localAddress: string, port: number, path: string): Promise<number> {
  const { promise, resolve, reject } = Promise.withResolvers<number>();
  const socket = net.connect({ host: LOCAL, port, localAddress });
  let text = "";
  socket.setEncoding("latin1");
  socket.on("data", (chunk: string) => text += chunk);
  socket.on("error", reject);
  socket.on("close", () => {
    const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
    if (status) resolve(Number(status));
    else reject(new Error(`No answer from the relay: '${text}'`));
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${LOCAL}\r\nConnection: close\r\n\r\n`);
  return promise;
}

Deno.test("startRelay() answers 429 rate_limited with Retry-After over an address's request rate, serves other addresses meanwhile, and the same connection after the wait", async () => {
  const refusals: RelayRefusal[] = [];
  await using relay = rateLimitedRelay(refusals);
  using client = await rawClient(relay.url);
  const get = `GET /x HTTP/1.1\r\nHost: ${LOCAL}\r\n\r\n`;
  for (let i = 0; i < 3; i++) {
    await client.send(get);
    assert.equal((await client.answer()).status, 200, `request ${i} is within the burst`);
  }
  await client.send(get);
  const refused = await client.answer();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("content-type"), "application/json");
  assert.equal(refused.headers.get("connection"), undefined, "the connection stays open");
  const wait = Number(refused.headers.get("retry-after"));
  assert.ok(Number.isInteger(wait) && wait >= 1, `Retry-After '${wait}' is whole seconds`);
  const body = JSON.parse(refused.text);
  assert.equal(body.error.code, "rate_limited");
  assert.match(body.error.message, /Too many requests from '127\.0\.0\.1': retry in \d+ s/);
  assert.deepEqual(refusals.map((r) => [r.code, r.from, r.method, r.path]), [
    ["rate_limited", "127.0.0.1", "GET", "/x"],
  ]);

  // Another address has its own bucket.
  assert.equal(await statusFrom("127.0.0.3", relay.addr.port, "/other"), 200);

  // After the wait the same connection is served again.
  await new Promise((r) => setTimeout(r, wait * 1000));
  await client.send(get);
  const again = await client.answer();
  assert.equal(again.status, 200);
  assert.equal(JSON.parse(again.text).from, "127.0.0.1");
});

Deno.test("startRelay() closes a connection whose request over the rate had a body, after the 429", async () => {
  const refusals: RelayRefusal[] = [];
  await using relay = rateLimitedRelay(refusals);
  using client = await rawClient(relay.url);
  for (let i = 0; i < 3; i++) {
    await client.send(`GET /x HTTP/1.1\r\nHost: ${LOCAL}\r\n\r\n`);
    assert.equal((await client.answer()).status, 200);
  }
  await client.send(`POST /up HTTP/1.1\r\nHost: ${LOCAL}\r\nContent-Length: 5\r\n\r\nhello`);
  const refused = await client.answer();
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("connection"), "close");
  assert.equal(await client.end(), "", "nothing more: the body is not read as a request");
  assert.equal(refusals[0].method, "POST");
});

Deno.test("startRelay() rejects a request rate that is not a number of requests a second", () => {
  for (const rate of [-1, Number.NaN, Infinity]) {
    assert.throws(
      () =>
        startRelay({
          hostname: LOCAL,
          port: 0,
          route: () => ({ upstream: "" }),
          requestsPerSecond: rate,
        }),
      RangeError,
    );
  }
});

Deno.test("startRelay() tells onRefused of a connection over the per-address cap", async () => {
  const refusals: RelayRefusal[] = [];
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    route: () => ({ answer: { status: 200 } }),
    maxConnectionsPerAddress: 1,
    onRefused: (r) => refusals.push(r),
  });
  using held = await rawClient(relay.url);
  await held.send(`GET / HTTP/1.1\r\nHost: ${LOCAL}\r\n\r\n`);
  assert.equal((await held.answer()).status, 200);
  using second = await rawClient(relay.url);
  assert.match(await second.end(), /^HTTP\/1\.1 429 Too Many Requests\r\n[^]*too_many_connections/);
  assert.deepEqual(refusals.map((r) => [r.status, r.code, r.from]), [
    [429, "too_many_connections", "127.0.0.1"],
  ]);
});
