import assert from "node:assert/strict";
import { createGateway, FORWARDED_CSP, type GatewayOptions, viaToken } from "./gateway.ts";
import { ownHosts } from "./origin_guard.ts";
import { tunnelAddress } from "./http_tunnel.ts";
import { type Relay, startRelay } from "../lib/http_relay/mod.ts";
import { socketPair } from "../lib/http_relay/_socket_pair.ts";
import { P2pError } from "../proto/errors.ts";
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

/** The main servers the peers of a test reach over their (fake) links, by peerId. */
type Links = Map<string, Relay>;

/**
 * A stream into `to`'s main server as the link from `from` gives one: a loopback
 * socket handed to `Relay.serve()` under the client address `_p2p-{from}` (the real
 * link's streams are tested in `http_tunnel_test.ts`). No link: a refusal.
 */
async function fakeLink(from: string, to: Relay | undefined): Promise<Deno.Conn> {
  if (!to) throw new P2pError("no_link", "No link to that peer");
  const { client, server } = await socketPair();
  const remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: tunnelAddress(from), port: 0 };
  to.serve(
    new Proxy(server, {
      get(target, prop) {
        if (prop === "remoteAddr") return remoteAddr;
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
  );
  return client;
}

/**
 * A peer's main server: a relay routed by `createGateway`, with its own app, a peer
 * table, and links to the other main servers in `links` (where it adds its own).
 */
async function peer(
  self: string,
  table: Map<string, { host: string; httpPort?: number }>,
  app?: string,
  links: Links = new Map(),
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
    tunnel: (id) => fakeLink(self, links.get(id)),
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
  links.set(self, relay);
  return {
    relay,
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

Deno.test("gateway: a request to A for C's id reaches C's app inside the link to C, whatever address A has for C", async () => {
  await using appC = await serve(echoApp("C"));
  const links: Links = new Map();
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url, links);
  await using a = await peer(ID.a, tableA, undefined, links);
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
  // C's main server saw it come over A's link, not from an IP address.
  assert.match(direct.forwardedFor, new RegExp(`${tunnelAddress(ID.a)}$`));

  // An address where nothing listens: the link is found by id, never by address.
  tableA.set(ID.c, { host: "198.51.100.9", httpPort: 5805 });
  const moved = await (await fetch(`${a.url}/_p2p/peers/${ID.c}/again`)).json();
  assert.deepEqual([moved.app, moved.path], ["C", "/again"]);
});

Deno.test("gateway: over a link only the own app is served, so forwarding never chains or loops; a peer without a link gives 502", async () => {
  const links: Links = new Map();
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  const tableB = new Map<string, { host: string; httpPort?: number }>();
  await using a = await peer(ID.a, tableA, undefined, links);
  await using b = await peer(ID.b, tableB, undefined, links);
  // Each believes X is reached through the other: B refuses to forward on.
  tableA.set(ID.x, { host: "127.0.0.1", httpPort: b.port });
  tableB.set(ID.x, { host: "127.0.0.1", httpPort: a.port });
  links.set(ID.x, b.relay);
  const chained = await fetch(`${a.url}/_p2p/peers/${ID.x}/`);
  assert.equal(chained.status, 403);
  assert.equal((await chained.json()).error.code, "forbidden_over_link");
  assert.deepEqual(b.refused, [tunnelAddress(ID.a)]);

  // Known, but no link to it.
  tableA.set(ID.c, { host: "127.0.0.1", httpPort: b.port });
  const dead = await fetch(`${a.url}/_p2p/peers/${ID.c}/`);
  assert.equal(dead.status, 502);
  const e = (await dead.json()).error;
  assert.equal(e.code, "bad_gateway");
  assert.match(e.message, /No link to that peer/);
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
  const links: Links = new Map();
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url, links);
  await using a = await peer(ID.a, tableA, undefined, links);
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

Deno.test("createGateway() routes another peer's id to its main server inside the link, an IPv6 address bracketed", async () => {
  const forwarded: string[] = [];
  const opened: string[] = [];
  const route = createGateway({
    self: ID.a,
    control: "http://127.0.0.1:1",
    hosts: new Set(["127.0.0.1:5805"]),
    locate: (id) =>
      id === ID.b ? { host: "fe80::1", httpPort: 5805 } : { host: "127.0.0.2", httpPort: 5806 },
    tunnel: (id) => {
      opened.push(id);
      return Promise.reject(new P2pError("no_link", "No link"));
    },
    onForward: (f) => forwarded.push(`${f.via} ${f.upstream}`),
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
  for (
    const [id, upstream] of [[ID.b, "http://[fe80::1]:5805"], [ID.c, "http://127.0.0.2:5806"]]
  ) {
    const routed = route(req(`/_p2p/peers/${id}/x`));
    assert.ok("upstream" in routed);
    const { connector, ...rest } = routed;
    assert.deepEqual(rest, { upstream, ...sandboxed });
    assert.equal(connector?.key, tunnelAddress(id));
    await assert.rejects(connector!.connect(), /No link/);
  }
  assert.deepEqual(opened, [ID.b, ID.c], "each through its own link");
  assert.deepEqual(forwarded, ["link http://[fe80::1]:5805", "link http://127.0.0.2:5806"]);
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
  const links: Links = new Map();
  const tableA = new Map<string, { host: string; httpPort?: number }>();
  await using c = await peer(ID.c, new Map(), appC.url, links);
  await using a = await peer(ID.a, tableA, app.url, links);
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
