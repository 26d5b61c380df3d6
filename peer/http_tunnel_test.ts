/**
 * HTTP over the peer link end to end in one process: peer A's main server (a relay
 * routed by its gateway) forwards `/_p2p/peers/{B}/…` into a tunnel stream of the
 * link between A and B; B's request handler hands the stream to B's main server,
 * whose gateway serves B's app. No TCP connection goes from A to B's main server:
 * A's peer table points B at an address where nothing listens.
 */
import assert from "node:assert/strict";
import { linkedPair } from "./_fakes.ts";
import type { RequestHandler } from "./connection.ts";
import { createGateway, FORWARDED_CSP, viaToken } from "./gateway.ts";
import { HttpTunnels, openHttpTunnel, tunnelAddress, tunnelPeer } from "./http_tunnel.ts";
import { ownHosts } from "./origin_guard.ts";
import { type Relay, startRelay } from "../lib/http_relay/mod.ts";
import { serveLocal as serve } from "../tests/_serve.ts";
import type { PeerConnection } from "./connection.ts";
import type { KnownPeer } from "./peer_table.ts";
import { NotFoundError } from "../proto/errors.ts";
import { within } from "../lib/http_relay/_relay_fixtures.ts";

/** B's app: echoes what it got; `/big?mib=N` streams N MiB; `/ws` is a WebSocket echo. */
function appB(): Deno.ServeHandler<Deno.NetAddr> {
  return async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`B: ${e.data}`);
      return response;
    }
    if (url.pathname === "/big") {
      const total = Number(url.searchParams.get("mib")) * 2 ** 20;
      const block = new Uint8Array(64 * 1024).fill(0x62);
      let sent = 0;
      return new Response(
        new ReadableStream({
          pull(c) {
            if (sent >= total) return c.close();
            c.enqueue(block.slice());
            sent += block.length;
          },
        }),
        { headers: { "content-length": String(total) } },
      );
    }
    return Response.json({
      method: req.method,
      path: url.pathname + url.search,
      body: req.body ? await req.text() : null,
      forwardedFor: req.headers.get("x-forwarded-for"),
      cookie: req.headers.get("cookie"),
      authorization: req.headers.get("authorization"),
    });
  };
}

/** A main server: a relay routed by a gateway, its Host names filled in once it listens. */
function mainServer(
  opts: Omit<Parameters<typeof createGateway>[0], "hosts">,
  relayOpts: { sendTimeoutMs?: number } = {},
) {
  const hosts = new Set<string>();
  const relay = startRelay({
    ...relayOpts,
    hostname: "127.0.0.1",
    port: 0,
    via: viaToken(opts.self),
    route: createGateway({ ...opts, hosts }),
  });
  for (const h of ownHosts("127.0.0.1", relay.addr.port)) hosts.add(h);
  return relay;
}

/** A and B linked, B serving its app over the link, A forwarding to B through it. */
async function twoPeers(optsB: { sendTimeoutMs?: number } = {}) {
  const app = await serve(appB());
  const control = await serve(() => Response.json({ control: true }));
  // B's main server listens only once the link gave B its id.
  const main: { b?: Relay } = {};
  const tunnels = new HttpTunnels({ serve: (s) => main.b!.serve(s) });
  const handler: RequestHandler = (msg, conn) =>
    msg.type === "HTTP_OPEN" ? tunnels.accept(msg, conn) : undefined;
  const pair = await linkedPair({ b: handler });
  const { a: idA, b: idB } = pair.ids;
  const refused: string[] = [];
  const relayB = main.b = mainServer({
    self: idB.peerId,
    control: control.url,
    app: app.url,
    locate: () => undefined,
    tunnel: () => Promise.reject(new NotFoundError("unknown_peer", "B links to no third peer")),
    onRefused: (f) => refused.push(`${f.status} ${f.code} ${f.host}`),
  }, optsB);
  const forwards: string[] = [];
  const relayA = mainServer({
    self: idA.peerId,
    control: control.url,
    // Nothing listens here: only the link reaches B.
    locate: (id) => id === idB.peerId ? { host: "198.51.100.9", httpPort: 5805 } : undefined,
    tunnel: (id) => pair.a.tunnels.open({ remote: tunnelAddress(id) }),
    onForward: (f) => forwards.push(f.via),
  });
  return {
    a: relayA,
    b: relayB,
    pair,
    tunnels,
    forwards,
    refused,
    base: `${relayA.url}/_p2p/peers/${idB.peerId}`,
    async [Symbol.asyncDispose]() {
      await relayA.close();
      await relayB.close();
      await pair[Symbol.asyncDispose]();
      await app.stop();
      await control.stop();
    },
  };
}

Deno.test("through the link: GET and POST reach B's app without credentials, answers come back sandboxed", async () => {
  await using p = await twoPeers();
  const get = await fetch(`${p.base}/hello?x=1`, {
    headers: { cookie: "p2p_token=secret", authorization: "Bearer secret" },
  });
  assert.equal(get.status, 200);
  assert.equal(get.headers.get("content-security-policy"), FORWARDED_CSP);
  const got = await get.json();
  assert.equal(got.path, "/hello?x=1");
  assert.equal(got.cookie, null);
  assert.equal(got.authorization, null);
  // B's main server saw the request come over A's link, not from an IP address.
  assert.match(got.forwardedFor, new RegExp(`${tunnelAddress(p.pair.ids.a.peerId)}$`));
  const body = "x".repeat(700_000);
  const post = await fetch(`${p.base}/upload`, { method: "POST", body });
  assert.equal((await post.json()).body, body);
  assert.deepEqual(p.forwards, ["link", "link"]);
});

Deno.test("through the link: a 16 MiB answer streams whole", async () => {
  await using p = await twoPeers();
  const res = await fetch(`${p.base}/big?mib=16`);
  let n = 0;
  for await (const chunk of res.body!) {
    assert.ok(chunk.every((b) => b === 0x62));
    n += chunk.length;
  }
  assert.equal(n, 16 * 2 ** 20);
});

Deno.test("through the link: a WebSocket to B's app opens through A and echoes", async () => {
  await using p = await twoPeers();
  const ws = new WebSocket(`${p.base.replace("http:", "ws:")}/ws`);
  const got = Promise.withResolvers<string>();
  const closed = Promise.withResolvers<void>();
  ws.onmessage = (e) => got.resolve(e.data);
  ws.onerror = () => got.reject(new Error("The WebSocket failed"));
  ws.onclose = () => closed.resolve();
  ws.onopen = () => ws.send("hi");
  assert.equal(await got.promise, "B: hi");
  ws.close();
  await closed.promise;
});

Deno.test("over the link only B's own app is served: its control API and other peers are refused", async () => {
  await using p = await twoPeers();
  const idB = p.pair.ids.b.peerId;
  const stream = await p.pair.a.tunnels.open({ remote: "test" });
  const ask = async (path: string) => {
    await stream.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nhost: anything\r\nauthorization: Bearer x\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    const n = await stream.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n!));
  };
  assert.match(
    await ask(`/_p2p/peers/${idB}/_p2p/status`),
    /^HTTP\/1\.1 403[^]*forbidden_over_link/,
  );
  assert.match(await ask(`/_p2p/status`), /^HTTP\/1\.1 403/);
  assert.match(await ask(`/_p2p/peers/${"c".repeat(40)}/x`), /^HTTP\/1\.1 403/);
  assert.match(await ask(`/_p2p/peers/${idB}/x`), /^HTTP\/1\.1 200/);
  stream.close();
  // Each refusal is recorded, with the link it came over.
  const from = tunnelAddress(p.pair.ids.a.peerId);
  assert.deepEqual(p.refused, Array(3).fill(`403 forbidden_over_link ${from}`));
});

Deno.test("over the link: a stream whose reader never gives credit back is closed by B's main server after its send limit, and its slot freed", async () => {
  await using p = await twoPeers({ sendTimeoutMs: 300 });
  const idB = p.pair.ids.b.peerId;
  const stream = await p.pair.a.tunnels.open({ remote: "test" });
  await stream.write(
    new TextEncoder().encode(`GET /_p2p/peers/${idB}/big?mib=64 HTTP/1.1\r\nhost: b\r\n\r\n`),
  );
  // Nothing is read on A's side: B's writes wait for credit until its limit passes.
  await within(stream.closed, "B closing the stream", 20_000);
  assert.equal(p.tunnels.open, 0, "B holds no tunnel for it");
  // The link goes on: the next stream is served.
  const res = await fetch(`${p.base}/hello`);
  assert.equal((await res.json()).path, "/hello");
});

Deno.test("openHttpTunnel() opens only to a proven peer, over the link that proves its id", async () => {
  await using p = await twoPeers();
  const idB = p.pair.ids.b.peerId;
  const proven = { peerId: idB, host: "198.51.100.9", ports: { chunk: 5801 } } as KnownPeer;
  const dialed: string[] = [];
  const deps = {
    table: { getProven: (id: string) => (id === idB ? proven : undefined) },
    pool: {
      connect: (host: string, port: number, expect?: string) => {
        dialed.push(`${host}:${port} ${expect}`);
        return Promise.resolve(p.pair.a as PeerConnection);
      },
    },
  };
  await assert.rejects(openHttpTunnel(deps, "d".repeat(40)), NotFoundError);
  const stream = await openHttpTunnel(deps, idB);
  assert.deepEqual(dialed, [`198.51.100.9:5801 ${idB}`]);
  assert.equal(tunnelPeer((stream.remoteAddr as Deno.NetAddr).hostname), idB);
  stream.close();
});
