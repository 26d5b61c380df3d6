import assert from "node:assert/strict";
import { createGateway, FORWARDED_CSP, type GatewayOptions, viaToken } from "./gateway.ts";
import { ownHosts } from "./origin_guard.ts";
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
      cookie: req.headers.get("cookie"),
      authorization: req.headers.get("authorization"),
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
  const hosts = new Set<string>();
  const refused: string[] = [];
  const opts: GatewayOptions = {
    self,
    control: control.url,
    app,
    hosts,
    locate: (id) => table.get(id),
    onRefused: (f) => refused.push(f.host),
  };
  const relay = startRelay({
    hostname: "127.0.0.1",
    port: 0,
    via: viaToken(self),
    timeoutMs: 2000,
    route: createGateway(opts),
  });
  for (const h of ownHosts("127.0.0.1", relay.addr.port)) hosts.add(h);
  return {
    url: relay.url,
    port: relay.addr.port,
    refused,
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
    hosts: new Set(["127.0.0.1:5805"]),
    locate: (id) =>
      id === ID.b ? { host: "fe80::1", httpPort: 5805 } : { host: "127.0.0.2", httpPort: 5806 },
    onForward: (f) => forwarded.push(f.upstream),
  });
  const req = (path: string) => ({
    method: "GET",
    path,
    search: "",
    headers: [["Host", "127.0.0.1:5805"]] as [string, string][],
    remoteAddr: "127.0.0.1",
  });
  const sandboxed = {
    dropRequestHeaders: ["cookie", "authorization"],
    dropAnswerHeaders: ["set-cookie"],
    answerHeaders: { "content-security-policy": FORWARDED_CSP },
  };
  assert.deepEqual(route(req(`/_p2p/peers/${ID.b}/x`)), {
    upstream: "http://[fe80::1]:5805",
    ...sandboxed,
  });
  assert.deepEqual(route(req(`/_p2p/peers/${ID.c}/`)), {
    upstream: "http://127.0.0.2:5806",
    ...sandboxed,
  });
  assert.deepEqual(forwarded, ["http://[fe80::1]:5805", "http://127.0.0.2:5806"]);
});

/** Sends one request with `host` as its `Host` over a raw socket; the status and body. */
async function rawGet(port: number, path: string, host: string) {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
  );
  const text = new TextDecoder().decode(
    await new Response(conn.readable).arrayBuffer().then((b) => new Uint8Array(b)),
  );
  const status = Number(text.split(" ")[1]);
  return { status, body: JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) };
}

Deno.test("gateway: a Host that is not one of the peer's names gets 421 JSON, for the app and the control API alike", async () => {
  await using app = await serve(echoApp("A"));
  await using a = await peer(ID.a, new Map(), app.url);
  for (const path of ["/", "/_p2p/status", `/_p2p/peers/${ID.a}/`]) {
    const evil = await rawGet(a.port, path, `attacker.example:${a.port}`);
    assert.equal(evil.status, 421, path);
    assert.equal(evil.body.error.code, "misdirected_host");
  }
  // Another port on a right name is another server, not this one.
  assert.equal((await rawGet(a.port, "/", `127.0.0.1:${a.port + 1}`)).status, 421);
  for (const host of [`127.0.0.1:${a.port}`, `localhost:${a.port}`, `LOCALHOST:${a.port}`]) {
    const ok = await rawGet(a.port, "/x", host);
    assert.equal(ok.status, 200, host);
    assert.equal(ok.body.app, "A");
  }
  assert.deepEqual(a.refused, [
    `attacker.example:${a.port}`,
    `attacker.example:${a.port}`,
    `attacker.example:${a.port}`,
    `127.0.0.1:${a.port + 1}`,
  ]);
});

Deno.test("gateway: what another peer's app answers comes sandboxed, without this origin's cookie or token and without Set-Cookie", async () => {
  await using appC = await serve((req) =>
    new Response(`<p>${req.headers.get("cookie")} ${req.headers.get("authorization")}</p>`, {
      headers: { "content-type": "text/html", "set-cookie": "p2p_token=forged; Path=/" },
    })
  );
  await using app = await serve(echoApp("A"));
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url);
  await using a = await peer(ID.a, tableA, app.url);
  tableA.set(ID.c, { host: "127.0.0.1", httpPort: c.port });
  const headers = { cookie: "p2p_token=secret", authorization: "Bearer secret" };
  const res = await fetch(`${a.url}/_p2p/peers/${ID.c}/page.html`, { headers });
  assert.equal(await res.text(), "<p>null null</p>");
  assert.equal(res.headers.get("content-security-policy"), FORWARDED_CSP);
  assert.doesNotMatch(FORWARDED_CSP, /allow-same-origin/);
  assert.equal(res.headers.get("set-cookie"), null);
  // The own app is not sandboxed, and gets what the client sent.
  const own = await fetch(`${a.url}/page`, { headers });
  assert.equal(own.headers.get("content-security-policy"), null);
  const echo = await own.json();
  assert.deepEqual([echo.cookie, echo.authorization], ["p2p_token=secret", "Bearer secret"]);
});
