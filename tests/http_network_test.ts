/**
 * HTTP over the peer network with real peer processes on 127.0.0.x: the main HTTP
 * server's reverse proxy to an application server that the test runs, streaming with
 * the peer's memory flat, 502 when the app is down, and forwarding by peerId from
 * peer A through the prefix to peer C's built-in app.
 */
import assert from "node:assert/strict";
import { tempDir } from "./_tracker_process.ts";
import { followLog, p2pClient, spawnPeer } from "./_peer_process.ts";
import { captureLoopback, contains } from "./_capture.ts";
import { concatBytes } from "../proto/bytes.ts";
import { serveLocal as serve } from "./_serve.ts";
import {
  ActivityRecord,
  DownloadEvent,
  NetworkPayloadsAnswer,
  PutEvent,
  StatusAnswer,
} from "../proto/control.ts";

const MiB = 2 ** 20;

/** A peer on 127.0.0.2 whose main server proxies to the app at `url`. */
function peerWithApp(dir: string, url: string) {
  return spawnPeer({ dataDir: `${dir}/a`, host: "127.0.0.2", args: ["--app", url] });
}

/** Resident memory of a process now and at its peak, in bytes (Linux /proc). */
async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)![1]);
  return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
}

/** An upstream app: echoes requests, and streams large bodies generated on the fly. */
function upstreamApp(): Deno.ServeHandler<Deno.NetAddr> {
  return async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = (e) => socket.send(`app: ${e.data}`);
      return response;
    }
    if (url.pathname === "/big") {
      const total = Number(url.searchParams.get("mib")) * MiB;
      let sent = 0;
      const block = new Uint8Array(256 * 1024).fill(0x61);
      return new Response(
        new ReadableStream<Uint8Array>({
          pull(ctrl) {
            if (sent >= total) return ctrl.close();
            ctrl.enqueue(block.slice());
            sent += block.length;
          },
        }),
        {
          headers: { "content-type": "application/octet-stream", "content-length": String(total) },
        },
      );
    }
    if (url.pathname === "/status") {
      const code = Number(url.searchParams.get("code"));
      return new Response(code === 204 ? null : `status ${code}`, {
        status: Number(url.searchParams.get("code")),
        headers: { "x-app": "yes" },
      });
    }
    if (url.pathname === "/redirect") {
      return new Response(null, { status: 302, headers: { location: `${url.origin}/landing` } });
    }
    let bytes = 0;
    if (req.body) { for await (const chunk of req.body) bytes += chunk.length; }
    return Response.json({
      method: req.method,
      path: url.pathname,
      query: url.search,
      custom: req.headers.get("x-custom"),
      via: req.headers.get("via"),
      forwardedFor: req.headers.get("x-forwarded-for"),
      forwardedHost: req.headers.get("x-forwarded-host"),
      connectionHeader: req.headers.get("keep-alive"),
      bytes,
    }, { headers: { "set-cookie": "a=1" } });
  };
}

Deno.test("the peer's main server proxies methods, queries, headers, bodies and statuses to its --app", async () => {
  await using dir = await tempDir();
  await using app = await serve(upstreamApp());
  await using peer = await peerWithApp(dir.path, app.url);
  for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"]) {
    const body = method === "GET" ? undefined : "x".repeat(1000);
    const res = await fetch(`${peer.http}/echo/path?a=1&b=two%20words`, {
      method,
      body,
      headers: { "x-custom": "kept", "keep-alive": "timeout=5", connection: "keep-alive" },
    });
    assert.equal(res.status, 200, method);
    assert.equal(res.headers.get("set-cookie"), "a=1");
    assert.match(res.headers.get("via") ?? "", /p2p-/);
    const got = await res.json();
    assert.deepEqual(
      [got.method, got.path, got.query, got.custom, got.bytes],
      [method, "/echo/path", "?a=1&b=two%20words", "kept", body?.length ?? 0],
    );
    assert.equal(got.connectionHeader, null, "hop-by-hop headers are dropped");
    assert.match(got.via, /^1\.1 p2p-[0-9a-f]{12}$/);
    assert.equal(got.forwardedFor, "127.0.0.1");
    assert.equal(got.forwardedHost, new URL(peer.http).host);
  }
  for (const code of [201, 204, 400, 404, 500, 503]) {
    const res = await fetch(`${peer.http}/status?code=${code}`);
    assert.equal(res.status, code);
    assert.equal(res.headers.get("x-app"), "yes");
    assert.equal(await res.text(), code === 204 ? "" : `status ${code}`);
  }
  const head = await fetch(`${peer.http}/status?code=200`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  const redirect = await fetch(`${peer.http}/redirect`, { redirect: "manual" });
  await redirect.body?.cancel();
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.get("location"), `${peer.http}/landing`);
  // The control API is still the peer's own.
  assert.equal(
    (await (await fetch(`${peer.http}/_p2p/status`, { headers: peer.auth })).json()).peerId,
    peer.peerId,
  );
});

Deno.test("a 100 MiB response streams through a peer with its memory flat, and a 300 MiB upload is never held whole", async () => {
  await using dir = await tempDir();
  await using app = await serve(upstreamApp());
  await using peer = await peerWithApp(dir.path, app.url);
  const pid = peer.child.pid;
  // Warm up the proxy's paths once, then measure.
  await (await fetch(`${peer.http}/big?mib=1`)).arrayBuffer();
  const before = await memory(pid);
  const res = await fetch(`${peer.http}/big?mib=100`);
  assert.equal(res.status, 200);
  let received = 0;
  for await (const chunk of res.body!) received += chunk.length;
  assert.equal(received, 100 * MiB);
  const afterDown = await memory(pid);
  const downGrowth = (afterDown.hwm - before.rss) / MiB;

  const upBytes = 300 * MiB;
  let sent = 0;
  const upload = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      if (sent >= upBytes) return ctrl.close();
      ctrl.enqueue(new Uint8Array(MiB));
      sent += MiB;
    },
  });
  const echoed = await (await fetch(`${peer.http}/upload`, {
    method: "POST",
    body: upload,
    headers: { "content-length": String(upBytes) },
  })).json();
  assert.equal(echoed.bytes, upBytes);
  const afterUp = await memory(pid);
  const upGrowth = (afterUp.hwm - afterDown.hwm) / MiB;
  console.log(
    `peer RSS ${(before.rss / MiB).toFixed(0)} MiB; peak +${downGrowth.toFixed(0)} MiB over a ` +
      `100 MiB download, then +${upGrowth.toFixed(0)} MiB over a 300 MiB upload`,
  );
  assert.ok(
    downGrowth < 32,
    `peak RSS grew by ${downGrowth.toFixed(0)} MiB for a 100 MiB download`,
  );
  assert.ok(upGrowth < 200, `peak RSS grew by ${upGrowth.toFixed(0)} MiB for a 300 MiB upload`);
});

Deno.test("with its app down a peer answers 502 JSON, keeps serving, and recovers when the app is back", async () => {
  await using dir = await tempDir();
  const app = await serve(upstreamApp());
  const url = app.url;
  await app.stop();
  await using peer = await peerWithApp(dir.path, url);
  const res = await fetch(`${peer.http}/anything`);
  assert.equal(res.status, 502);
  const e = (await res.json()).error;
  assert.equal(e.code, "bad_gateway");
  assert.ok(e.message.includes(url), e.message);
  assert.equal(
    (await (await fetch(`${peer.http}/_p2p/status`, { headers: peer.auth })).json()).peerId,
    peer.peerId,
  );
  // The same port again: the proxy reaches it.
  const port = Number(new URL(url).port);
  const back = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, upstreamApp());
  try {
    const ok = await fetch(`${peer.http}/echo`);
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).path, "/echo");
  } finally {
    await back.shutdown();
  }
});

Deno.test("peer A forwards /_p2p/peers/{C}/… to C's built-in app across three peers; a loop is stopped", async () => {
  await using dir = await tempDir();
  await using c = await spawnPeer({ dataDir: `${dir.path}/c`, host: "127.0.0.4", name: "carol" });
  await using b = await spawnPeer({
    dataDir: `${dir.path}/b`,
    host: "127.0.0.3",
    name: "bob",
    seeds: [`${c.host}:${c.port}`],
  });
  // A knows only B, and learns C from B by peer exchange.
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    name: "alice",
    seeds: [`${b.host}:${b.port}`],
  });
  // A forwards only to an address it proved with a handshake of its own: C is listed
  // as soon as B tells of it, and forwardable once A has linked with it (under the
  // whole suite's load that came later: a 404 unknown_peer right after the listing).
  const forwardsToC = async () => {
    for (let i = 0; i < 60; i++) {
      const res = await fetch(`${a.http}/_p2p/peers/${c.peerId}/`);
      if (res.status !== 404) return res;
      assert.equal((await res.json()).error.code, "unknown_peer");
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error("A did not learn and prove C within 15 s");
  };
  const page = await forwardsToC();
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await page.text(), /<html/i);
  // The page is sandboxed: it runs in an opaque origin of its own, not A's.
  // (Its own policy stays, the sandbox is added: both hold.)
  assert.match(page.headers.get("content-security-policy") ?? "", /(^|, )sandbox allow-scripts/);
  // C's control API is C's owner's: over a peer link C serves only its app, so through
  // A (or B) it answers 403, whatever the client sends to A.
  for (const [via, auth] of [[a, a.auth], [b, b.auth], [a, c.auth]] as const) {
    const res = await fetch(`${via.http}/_p2p/peers/${c.peerId}/_p2p/status`, { headers: auth });
    assert.equal(res.status, 403);
    assert.equal((await res.json()).error.code, "forbidden_over_link");
  }

  const unknown = await fetch(`${a.http}/_p2p/peers/${"0".repeat(40)}/`);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "unknown_peer");

  // A request that already passed through A (its Via entry) must not go round again.
  const self = await fetch(`${a.http}/_p2p/peers/${a.peerId}/_p2p/status`, { headers: a.auth });
  assert.equal((await self.json()).peerId, a.peerId);
  // The own control API under the own prefix needs the token as much.
  const anonymous = await fetch(`${a.http}/_p2p/peers/${a.peerId}/_p2p/status`);
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).error.code, "unauthorized");
  const loop = await fetch(`${a.http}/_p2p/peers/${c.peerId}/`, {
    headers: { via: `1.1 p2p-${a.peerId.slice(0, 12)}` },
  });
  assert.equal(loop.status, 508);
  assert.equal((await loop.json()).error.code, "loop_detected");
  const log = await (await fetch(`${a.http}/_p2p/log?type=proxy`, { headers: a.auth })).json();
  assert.ok(log.records.some((r: { type: string }) => r.type === "proxy.forward"));
  assert.ok(
    log.records.some((r: { type: string; status?: number }) =>
      r.type === "proxy.error" && r.status === 508
    ),
  );
});

/** Reads server-sent events from `res` until `count` have come; returns them parsed. */
async function readEvents(res: Response, count: number) {
  const events: { event: string; id: string; data: Record<string, unknown> }[] = [];
  let buf = "";
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const field = (name: string) =>
          block.split("\n").find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        const data = field("data");
        if (data) events.push({ event: field("event")!, id: field("id")!, data: JSON.parse(data) });
      }
    }
  } finally {
    await reader.cancel();
  }
  return events;
}

Deno.test("the control API streams activity as server-sent events, lists the network over the peer link, and downloads chunks", async () => {
  await using dir = await tempDir();
  await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", name: "alice" });
  await using b = await spawnPeer({
    dataDir: `${dir.path}/b`,
    host: "127.0.0.3",
    name: "bob",
    seeds: [`${a.host}:${a.port}`],
  });
  const bytes = new Uint8Array(2 * MiB + 5).map((_, i) => (i * 31) & 255);
  const put = await fetch(`${a.http}/_p2p/payloads?name=two.bin`, {
    method: "POST",
    body: bytes,
    headers: a.auth,
  });
  // Every answer here is checked against its schema in proto/control.ts.
  const lines = (await put.text()).trim().split("\n").map((l) => PutEvent.parse(JSON.parse(l)));
  const done = lines.at(-1);
  assert.ok(done?.type === "done", JSON.stringify(lines));
  const id = done.payloadId;

  // The newest records first, filtered by type, each with its id as the event id.
  const first = await readEvents(
    await fetch(`${a.http}/_p2p/events?type=payload`, { headers: a.auth }),
    1,
  );
  assert.equal(first[0].event, "activity");
  ActivityRecord.parse(first[0].data);
  assert.equal(first[0].data.type, "payload.put");
  assert.equal(first[0].data.payloadId, id);
  assert.equal(first[0].id, String(first[0].data.id));
  // A reconnecting client gets only what came after the last id it saw: here the
  // record of a pingback request made once it is connected.
  const resumed = await fetch(`${a.http}/_p2p/events`, {
    headers: { ...a.auth, "last-event-id": first[0].id },
  });
  const { ports, memory, http } = StatusAnswer.parse(
    await (await fetch(`${a.http}/_p2p/status`, { headers: a.auth })).json(),
  );
  assert.ok(http);
  assert.ok(memory.rss > memory.heapUsed && memory.heapUsed > 0, JSON.stringify(memory));
  // This status request is one of them, relayed to the control API.
  assert.ok(http.connections >= 1 && http.requests >= http.forwarded, JSON.stringify(http));
  assert.ok(http.forwarded >= 1 && http.failures === 0, JSON.stringify(http));
  const status = await p2pClient(["status", "--node", a.http]);
  assert.match(
    status.stdout,
    /^memory\s+[\d.]+ MiB resident \(JS heap [\d.]+ MiB, buffers [\d.]+ MiB\)$/m,
  );
  assert.match(
    status.stdout,
    /^http\s+\d+ connections, \d+ requests \(\d+ relayed, 0 failed\), \d+ idle upstream connections$/m,
  );
  await (await fetch(`http://${a.host}:${ports.pingback}/`)).body?.cancel();
  const after = await readEvents(resumed, 1);
  assert.ok(Number(after[0].data.id) > Number(first[0].id), JSON.stringify(after));

  // Bob's catalogue reads alice's list over the authenticated peer link (PAYLOADS?),
  // not from her control API, which is her owner's.
  const net = NetworkPayloadsAnswer.parse(
    await (await fetch(`${b.http}/_p2p/network/payloads`, { headers: b.auth })).json(),
  );
  const listed = net.payloads.find((p) => p.payloadId === id);
  assert.deepEqual(listed?.holders.map((h) => h.peerId), [a.peerId], JSON.stringify(net));
  assert.deepEqual(net.errors, []);

  // Bob downloads it: one `chunk` event per position, from alice (chunks 0 and 1 have the
  // same bytes, so one transfer fills both), and the name comes along.
  const dl = await fetch(`${b.http}/_p2p/downloads/${id}`, { method: "POST", headers: b.auth });
  const events = (await dl.text()).trim().split("\n").map((l) =>
    DownloadEvent.parse(JSON.parse(l))
  );
  const chunks = events.flatMap((e) => e.type === "chunk" ? [e] : []);
  assert.deepEqual(chunks.map((c) => c.index).sort(), [0, 1, 2]);
  assert.ok(chunks.every((c) => c.source === a.peerId));
  assert.equal(events.at(-1)?.type, "done");
  const file = await fetch(`${b.http}/_p2p/payloads/${id}/content?download=1`, {
    headers: b.auth,
  });
  // npm content-disposition quotes a name only when it is not an HTTP token.
  assert.match(
    file.headers.get("content-disposition") ?? "",
    /^attachment; filename="?two\.bin"?$/,
  );
  assert.deepEqual(new Uint8Array(await file.arrayBuffer()), bytes);
});

for (const plaintext of [false, true]) {
  const mode = plaintext ? "a plaintext link (--insecure-plaintext)" : "their encrypted link";
  Deno.test(`A reaches B's app by peerId inside ${mode}: GET, POST, a WebSocket and a 256 MiB answer, with B's main server reached only over the link and ${plaintext ? "the capture seeing the requests" : "no plaintext on the wire"}`, async () => {
    await using dir = await tempDir();
    await using app = await serve(upstreamApp());
    const args = plaintext ? ["--insecure-plaintext"] : [];
    await using b = await spawnPeer({
      dataDir: `${dir.path}/b`,
      host: "127.0.0.3",
      name: "bob",
      args: ["--app", app.url, ...args],
    });
    // What goes to or from B's link ports (the chunk port, and the TLS link port the
    // link moves to) and B's main server.
    const bHttp = new URL(b.http).host;
    const status = await (await fetch(`${b.http}/_p2p/status`, { headers: b.auth })).json();
    assert.equal(status.ports.tls === undefined, plaintext, "a TLS link port unless plaintext");
    const linkPorts = [b.port, ...(plaintext ? [] : [status.ports.tls])];
    await using capture = await captureLoopback(dir.path, [
      ...linkPorts.map((p) => `${b.host}:${p}`),
      bHttp,
    ]);
    await using a = await spawnPeer({
      dataDir: `${dir.path}/a`,
      host: "127.0.0.2",
      name: "alice",
      seeds: [`${b.host}:${b.port}`],
      args,
    });
    {
      await using aLog = await followLog(a);
      await aLog.waitFor((r) => r.type === "conn.open" && r.peerId === b.peerId, "A's link to B");
    }
    const base = `${a.http}/_p2p/peers/${b.peerId}`;
    const marker = `HTTP-TUNNEL-MARKER-${crypto.randomUUID()}`;

    const get = await fetch(`${base}/echo?q=${marker}`, { headers: { "x-custom": marker } });
    assert.equal(get.status, 200);
    const echoed = await get.json();
    assert.equal(echoed.query, `?q=${marker}`);
    assert.equal(echoed.custom, marker);
    // B's main server got it from A's link (`_p2p-{A}`), not from A's address over TCP.
    assert.equal(echoed.forwardedFor, `127.0.0.1, _p2p-${a.peerId}`);

    const body = new TextEncoder().encode(marker.repeat(50_000));
    const post = await fetch(`${base}/upload`, { method: "POST", body });
    assert.equal((await post.json()).bytes, body.length);

    const ws = new WebSocket(`${base.replace("http:", "ws:")}/ws`);
    const said = Promise.withResolvers<string>();
    const closed = Promise.withResolvers<void>();
    ws.onopen = () => ws.send(marker);
    ws.onmessage = (e) => said.resolve(e.data);
    ws.onerror = () => said.reject(new Error("The WebSocket through A failed"));
    ws.onclose = () => closed.resolve();
    assert.equal(await said.promise, `app: ${marker}`);
    ws.close();
    await closed.promise;

    // The capture may lose packets when it falls behind, but sees most of them; in
    // plaintext it finds the requests, so that it finds nothing when encrypted counts.
    const seenBy = await capture.stop();
    const bMain = seenBy.pop()!;
    const link = {
      bytes: seenBy.reduce((n, c) => n + c.bytes, 0),
      data: concatBytes(...seenBy.map((c) => c.data)),
    };
    // (An eighth: under the whole suite's load it once kept 42 % of the upload's bytes.)
    assert.ok(link.bytes > body.length / 8, `the capture saw the link (${link.bytes} bytes)`);
    assert.equal(bMain.bytes, 0, "nothing went to B's main server over TCP");
    const seen = (s: string) => contains(link.data, new TextEncoder().encode(s));
    assert.equal(seen(marker), plaintext, "the requests' plaintext on the wire");
    assert.equal(seen(`GET /_p2p/peers/${b.peerId}/echo`), plaintext, "the request line");

    // A large answer streams through both peers, their memory bounded by the windows
    // and buffers on the way, not by the answer's size.
    const pids = [a.child.pid, b.child.pid];
    const before = await Promise.all(pids.map(memory));
    const big = await fetch(`${base}/big?mib=256`);
    let n = 0;
    for await (const chunk of big.body!) n += chunk.length;
    assert.equal(n, 256 * MiB);
    const after = await Promise.all(pids.map(memory));
    const growth = after.map((m, i) => (m.hwm - before[i].rss) / MiB);
    console.log(
      `peak RSS growth over 256 MiB: A +${growth[0].toFixed(0)}, B +${growth[1].toFixed(0)} MiB`,
    );
    for (const g of growth) assert.ok(g < 96, `peak RSS grew by ${g.toFixed(0)} MiB`);
    const log = await (await fetch(`${a.http}/_p2p/log?type=proxy.forward`, { headers: a.auth }))
      .json();
    assert.equal(log.records.length, 4);
    assert.ok(log.records.every((r: { via?: string }) => r.via === "link"));
  });
}

Deno.test("a peer A learned of but never proved cannot be reached through A's gateway", async () => {
  await using dir = await tempDir();
  // C is proven by B, then stops: A learns C's record from B but cannot prove it.
  await using c = await spawnPeer({ dataDir: `${dir.path}/c`, host: "127.0.0.4", name: "carol" });
  const cId = c.peerId;
  await using b = await spawnPeer({
    dataDir: `${dir.path}/b`,
    host: "127.0.0.3",
    name: "bob",
    seeds: [`${c.host}:${c.port}`],
  });
  {
    await using bLog = await followLog(b);
    await bLog.waitFor((r) => r.type === "conn.open" && r.peerId === cId, "B's link to C");
  }
  await c.kill();
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    name: "alice",
    seeds: [`${b.host}:${b.port}`],
  });
  {
    await using aLog = await followLog(a);
    await aLog.waitFor((r) => r.type === "exchange" && r.with === b.peerId, "A's exchange with B");
  }
  const { peers } = await (await fetch(`${a.http}/_p2p/peers`, { headers: a.auth })).json();
  assert.ok(peers.some((p: { peerId: string }) => p.peerId === cId), "A learned C");
  const res = await fetch(`${a.http}/_p2p/peers/${cId}/`);
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, "unknown_peer");
});
