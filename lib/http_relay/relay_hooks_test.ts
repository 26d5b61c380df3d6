/**
 * The relay's two hooks for upstreams and clients that are not plain TCP: a route's
 * `connector` (how to reach its upstream) and `Relay.serve()` (a client connection
 * handed in rather than accepted).
 */
import assert from "node:assert/strict";
import { startRelay } from "./relay.ts";
import type { Connector } from "./types.ts";
import { decoder, encoder, listen, LOCAL } from "./_relay_fixtures.ts";
import { socketPair } from "./_socket_pair.ts";

Deno.test("a route's connector reaches the upstream instead of its host and port, and its connections are kept idle under its key", async () => {
  await using app = listen((req) =>
    new Response(`${req.headers.get("host")} ${new URL(req.url).pathname}`)
  );
  let opened = 0;
  const connector: Connector = {
    key: "tunnel:one",
    async connect() {
      opened++;
      return await Deno.connect({ hostname: LOCAL, port: app.server.addr.port });
    },
  };
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    // Nothing listens at this address: only the connector can reach the app.
    route: () => ({ upstream: "http://198.51.100.7:5805", connector }),
  });
  for (const path of ["/a", "/b"]) {
    const res = await fetch(`${relay.url}${path}`);
    assert.equal(await res.text(), `198.51.100.7:5805 ${path}`);
  }
  assert.equal(opened, 1, "the second request took the idle connection");
});

Deno.test("a connector that fails answers 502 JSON with its message", async () => {
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    route: () => ({
      upstream: "http://198.51.100.7:5805",
      connector: { key: "k", connect: () => Promise.reject(new Error("peer refused: busy")) },
    }),
  });
  const res = await fetch(`${relay.url}/x`);
  assert.equal(res.status, 502);
  const body = await res.json();
  assert.equal(body.error.code, "bad_gateway");
  assert.match(body.error.message, /peer refused: busy/);
});

Deno.test("Relay.serve() serves a connection handed in, with its remoteAddr as the client's", async () => {
  await using app = listen((req) => new Response(req.headers.get("x-forwarded-for")));
  await using relay = startRelay({
    hostname: LOCAL,
    port: 0,
    route: () => ({ upstream: app.url }),
  });
  await using pair = await socketPair();
  relay.serve(pair.server);
  await pair.client.write(encoder.encode("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"));
  let text = "";
  const buf = new Uint8Array(4096);
  for (let n; (n = await pair.client.read(buf)) !== null;) {
    text += decoder.decode(buf.subarray(0, n));
  }
  assert.match(text, /^HTTP\/1\.1 200/);
  assert.ok(text.endsWith("\r\n\r\n127.0.0.1"), text);
});

Deno.test("Relay.serve() closes a connection handed in once the relay is closing", async () => {
  const relay = startRelay({ hostname: LOCAL, port: 0, route: () => ({ upstream: "http://x" }) });
  await relay.close();
  await using pair = await socketPair();
  relay.serve(pair.server);
  assert.equal(await pair.client.read(new Uint8Array(16)), null);
});
