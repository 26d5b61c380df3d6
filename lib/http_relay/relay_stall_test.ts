import assert from "node:assert/strict";
import {
  encoder,
  get,
  rawClient,
  rawUpstream,
  readRequestHead,
  startProxy,
  within,
} from "./_relay_fixtures.ts";
import { socketPair } from "./_socket_pair.ts";

/**
 * An upstream whose answer never ends (no length: it ends at close); each
 * connection's promise settles with the bytes it wrote once a write fails, which
 * is when the relay closed it.
 */
function endlessUpstream() {
  const cut = Promise.withResolvers<number>();
  const up = rawUpstream(async (conn) => {
    await readRequestHead(conn);
    const block = new Uint8Array(64 * 1024).fill(0x61);
    let sent = 0;
    try {
      await conn.write(encoder.encode("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"));
      for (;;) sent += await conn.write(block);
    } catch {
      cut.resolve(sent);
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  });
  return { up, cut: cut.promise };
}

Deno.test("startRelay(): a client that stops reading is cut off after sendTimeoutMs, and so is the upstream its answer came from", async () => {
  const { up, cut } = endlessUpstream();
  await using _up = up;
  await using relay = startProxy({ upstream: up.url, sendTimeoutMs: 300 });
  await using client = await rawClient(relay.url);
  await client.send(get("/endless"));
  // The client reads nothing: once the socket buffers are full, the relay's writes
  // wait, the limit passes, and both connections are closed.
  const sent = await within(cut, "the upstream's connection closing", 20_000);
  assert.ok(sent > 0, "the upstream wrote until the relay stopped reading it");
  const got = await client.end();
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(relay.stats().connections, 0);
  // The relay serves the next client as before.
  await using next = await rawClient(relay.url);
  await next.send(get("/endless"));
  assert.match(await next.head(), /^HTTP\/1\.1 200 OK\r\n/);
});

Deno.test("startRelay(): a connection handed to serve() (a peer link's stream) that stops reading is cut off too", async () => {
  const { up, cut } = endlessUpstream();
  await using _up = up;
  await using relay = startProxy({ upstream: up.url, sendTimeoutMs: 300 });
  await using pair = await socketPair();
  relay.serve(pair.server);
  await pair.client.write(encoder.encode(get("/endless")));
  await within(cut, "the upstream's connection closing", 20_000);
  // What the relay wrote before it gave up, then the end.
  const buf = new Uint8Array(64 * 1024);
  let read = 0;
  for (;;) {
    const n = await pair.client.read(buf).catch(() => null);
    if (n === null) break;
    read += n;
  }
  assert.ok(read > 0);
  assert.equal(relay.stats().connections, 0);
});
