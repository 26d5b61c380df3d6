import assert from "node:assert/strict";
import { createGateway, type GatewayOptions, viaToken } from "./gateway.ts";
import { startRelay } from "../lib/http_relay/mod.ts";
import { serveLocal as serve } from "../tests/_serve.ts";

/** An app that says who it is and echoes what it got. */
function echoApp(name: string): Deno.ServeHandler<Deno.NetAddr> {
  return async (req) => {
    const url = new URL(req.url);
    return Response.json({
      app: name,
      method: req.method,
      path: url.pathname,
      query: url.search,
      via: req.headers.get("via"),
      forwardedFor: req.headers.get("x-forwarded-for"),
      body: req.body ? await req.text() : null,
    });
  };
}

const ID = { a: "a".repeat(40), b: "b".repeat(40), c: "c".repeat(40), x: "e".repeat(40) };

/** A peer's main server: a relay routed by `createGateway`, with its own app and a peer table. */
async function peer(
  self: string,
  table: Map<string, { host: string; httpPort?: number }>,
  app?: string,
) {
  const control = await serve((req) =>
    Response.json({ control: self, path: new URL(req.url).pathname })
  );
  const opts: GatewayOptions = { self, control: control.url, app, locate: (id) => table.get(id) };
  const relay = startRelay({
    hostname: "127.0.0.1",
    port: 0,
    via: viaToken(self),
    timeoutMs: 2000,
    route: createGateway(opts),
  });
  return {
    url: relay.url,
    port: relay.addr.port,
    async [Symbol.asyncDispose]() {
      await relay.close();
      await control.stop();
    },
  };
}

Deno.test("gateway: /_p2p/ goes to the control API, everything else to the app", async () => {
  await using app = await serve(echoApp("A"));
  await using a = await peer(ID.a, new Map(), app.url);
  assert.deepEqual(await (await fetch(`${a.url}/_p2p/status`)).json(), {
    control: ID.a,
    path: "/_p2p/status",
  });
  assert.deepEqual(await (await fetch(`${a.url}/_p2p/peers`)).json(), {
    control: ID.a,
    path: "/_p2p/peers",
  });
  const res = await (await fetch(`${a.url}/some/page?x=1&y=2`, { method: "PUT", body: "hello" }))
    .json();
  assert.deepEqual([res.app, res.method, res.path, res.query, res.body], [
    "A",
    "PUT",
    "/some/page",
    "?x=1&y=2",
    "hello",
  ]);
  assert.equal(res.via, viaToken(ID.a));
  assert.equal(res.forwardedFor, "127.0.0.1");
});

Deno.test("gateway: /_p2p/peers/{own id}/… reaches the own app (or control API) without the prefix; no slash redirects", async () => {
  await using app = await serve(echoApp("A"));
  await using a = await peer(ID.a, new Map(), app.url);
  const res = await (await fetch(`${a.url}/_p2p/peers/${ID.a}/x/y?q=1`)).json();
  assert.deepEqual([res.app, res.path, res.query], ["A", "/x/y", "?q=1"]);
  // The own control API under the prefix, for pages loaded through another peer.
  assert.deepEqual(await (await fetch(`${a.url}/_p2p/peers/${ID.a}/_p2p/status`)).json(), {
    control: ID.a,
    path: "/_p2p/status",
  });
  const redirect = await fetch(`${a.url}/_p2p/peers/${ID.a}?q=1`, { redirect: "manual" });
  await redirect.body?.cancel();
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), `/_p2p/peers/${ID.a}/?q=1`);
});

Deno.test("gateway: unknown and malformed peer ids, a peer without HTTP port, no app: JSON errors", async () => {
  const table = new Map([[ID.b, { host: "127.0.0.1" }]]);
  await using a = await peer(ID.a, table);
  const cases: [string, number, string][] = [
    [`/_p2p/peers/${ID.x}/`, 404, "unknown_peer"],
    ["/_p2p/peers/xyz/", 400, "invalid_id"],
    [`/_p2p/peers/${ID.a.toUpperCase()}/`, 400, "invalid_id"],
    [`/_p2p/peers/${ID.b}/`, 502, "bad_gateway"],
    ["/index.html", 404, "no_app"],
    [`/_p2p/peers/${ID.a}/`, 404, "no_app"],
  ];
  for (const [path, status, code] of cases) {
    const res = await fetch(a.url + path);
    assert.equal(res.status, status, path);
    assert.equal((await res.json()).error.code, code, path);
  }
});

Deno.test("gateway: a request to A for C's id reaches C's app across three peers, directly or relayed by B", async () => {
  await using appC = await serve(echoApp("C"));
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  const tableB = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url);
  await using b = await peer(ID.b, tableB);
  await using a = await peer(ID.a, tableA);
  tableB.set(ID.c, { host: "127.0.0.1", httpPort: c.port });

  // A knows where C is.
  tableA.set(ID.c, { host: "127.0.0.1", httpPort: c.port });
  const direct =
    await (await fetch(`${a.url}/_p2p/peers/${ID.c}/hello?n=1`, { method: "POST", body: "hi" }))
      .json();
  assert.deepEqual([direct.app, direct.method, direct.path, direct.query, direct.body], [
    "C",
    "POST",
    "/hello",
    "?n=1",
    "hi",
  ]);
  assert.equal(direct.via, `${viaToken(ID.a)}, ${viaToken(ID.c)}`);

  // A has C at B's address (C moved): B relays it on to where it knows C is.
  tableA.set(ID.c, { host: "127.0.0.1", httpPort: b.port });
  const relayed = await (await fetch(`${a.url}/_p2p/peers/${ID.c}/hello`)).json();
  assert.equal(relayed.app, "C");
  assert.equal(relayed.via, `${viaToken(ID.a)}, ${viaToken(ID.b)}, ${viaToken(ID.c)}`);
});

Deno.test("gateway: a forwarding loop between two peers ends with 508, and an unreachable peer gives 502", async () => {
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  const tableB = new Map<string, { host: string; httpPort?: number }>();
  await using a = await peer(ID.a, tableA);
  await using b = await peer(ID.b, tableB);
  // Each believes X lives at the other.
  tableA.set(ID.x, { host: "127.0.0.1", httpPort: b.port });
  tableB.set(ID.x, { host: "127.0.0.1", httpPort: a.port });
  const loop = await fetch(`${a.url}/_p2p/peers/${ID.x}/`);
  assert.equal(loop.status, 508);
  assert.equal((await loop.json()).error.code, "loop_detected");

  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = closed.addr.port;
  closed.close();
  tableA.set(ID.x, { host: "127.0.0.1", httpPort: deadPort });
  const dead = await fetch(`${a.url}/_p2p/peers/${ID.x}/`);
  assert.equal(dead.status, 502);
  const e = (await dead.json()).error;
  assert.equal(e.code, "bad_gateway");
  assert.match(e.message, new RegExp(String(deadPort)));
  // Still serving.
  assert.equal((await fetch(`${a.url}/_p2p/status`).then((r) => r.json())).control, ID.a);
});

Deno.test("gateway: a WebSocket to C's app opens through A by C's peerId and echoes both ways", async () => {
  await using appC = await serve((req) => {
    if (req.headers.get("upgrade") !== "websocket") return new Response("no upgrade here");
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(`C: ${e.data}`);
    return response;
  });
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url);
  await using a = await peer(ID.a, tableA);
  tableA.set(ID.c, { host: "127.0.0.1", httpPort: c.port });

  const ws = new WebSocket(`${a.url.replace("http:", "ws:")}/_p2p/peers/${ID.c}/chat`);
  const opened = Promise.withResolvers<void>();
  const closed = Promise.withResolvers<void>();
  const messages: string[] = [];
  const got = Promise.withResolvers<void>();
  ws.onopen = () => opened.resolve();
  ws.onerror = () => opened.reject(new Error("The WebSocket failed"));
  ws.onclose = () => closed.resolve();
  ws.onmessage = (e) => {
    messages.push(e.data);
    if (messages.length === 2) got.resolve();
  };
  await opened.promise;
  ws.send("hello");
  ws.send("again");
  await got.promise;
  assert.deepEqual(messages, ["C: hello", "C: again"]);
  ws.close();
  await closed.promise;
});

Deno.test("createGateway() routes another peer's id to its main server, an IPv6 address bracketed", () => {
  const forwarded: string[] = [];
  const route = createGateway({
    self: ID.a,
    control: "http://127.0.0.1:1",
    locate: (id) =>
      id === ID.b ? { host: "fe80::1", httpPort: 5805 } : { host: "127.0.0.2", httpPort: 5806 },
    onForward: (f) => forwarded.push(f.upstream),
  });
  const req = (path: string) => ({
    method: "GET",
    path,
    search: "",
    headers: [],
    remoteAddr: "127.0.0.1",
  });
  assert.deepEqual(route(req(`/_p2p/peers/${ID.b}/x`)), { upstream: "http://[fe80::1]:5805" });
  assert.deepEqual(route(req(`/_p2p/peers/${ID.c}/`)), { upstream: "http://127.0.0.2:5806" });
  assert.deepEqual(forwarded, ["http://[fe80::1]:5805", "http://127.0.0.2:5806"]);
});
