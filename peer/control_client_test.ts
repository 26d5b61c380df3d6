import assert from "node:assert/strict";
import { ControlClient, ControlError, PeerUnreachableError } from "./control_client.ts";
import { createControlApp } from "./control.ts";
import {
  COMPLETE,
  COMPLETE_BYTES,
  fakeNode,
  OWNER_TOKEN,
  ownerAuth,
  PARTIAL,
  PEER_B,
} from "./_control_fake.ts";
import { P2pError, PeerTimeoutError, ProtocolError } from "../proto/errors.ts";

/** Serves `handler` on 127.0.0.1, port 0; disposing shuts it down. */
function serve(handler: Deno.ServeHandler) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("ControlClient reads status, peers, payloads, network payloads, where, discover and log pages", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  await using server = serve((req) => app.fetch(req));
  const client = new ControlClient(server.url + "/", { token: OWNER_TOKEN });
  assert.equal(client.url, server.url);
  assert.equal((await client.status()).name, "alice");
  assert.equal((await client.peers()).peers[0].peerId, PEER_B);
  assert.equal((await client.payloads()).payloads.length, 2);
  assert.equal((await client.networkPayloads()).errors[0].source, "tracker");
  assert.equal((await client.where(COMPLETE)).chunks, 3);
  assert.deepEqual((await client.discover("127.0.0.3")).ranges, ["127.0.0.3"]);
  // With onProgress the answer streams: the probes' progress, then the report.
  const seen: string[] = [];
  const streamed = await client.discover("127.0.0.3", {
    onProgress: (p) => seen.push(`${p.phase} ${p.probed}/${p.total} ${p.found}`),
  });
  assert.deepEqual(streamed.ranges, ["127.0.0.3"]);
  assert.equal(streamed.found[0].peerId, PEER_B);
  // The first and the last are always sent; between them at most one per 100 ms.
  assert.equal(seen[0], "devices 0/2 0");
  assert.equal(seen.at(-1), "probing 2/2 1");
  node.log.record("conn.open", {});
  node.log.record("payload.put", {});
  const page = await client.log({ type: "conn", limit: 5 });
  assert.deepEqual(page.records.map((r) => r.type), ["conn.open"]);
  const remote = await client.log({ peer: PEER_B });
  assert.deepEqual(remote.records.map((r) => r.id), [1, 2]);
});

Deno.test("ControlClient turns error answers into ControlError with the answer's code and status", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  await using server = serve((req) => app.fetch(req));
  const client = new ControlClient(server.url, { token: OWNER_TOKEN });
  await assert.rejects(client.where("abc"), (err) => {
    assert.ok(err instanceof ControlError && err instanceof P2pError);
    assert.deepEqual([err.code, err.status, err.httpStatus], ["invalid_id", 400, 400]);
    assert.match(err.message, /'abc' is too short/);
    return true;
  });
  await assert.rejects(client.content(PARTIAL), (err) => {
    assert.ok(err instanceof ControlError);
    assert.deepEqual([err.code, err.status], ["incomplete", 409]);
    return true;
  });
  await assert.rejects(client.discover("lan"), { code: "invalid_range", status: 400 });
});

Deno.test("ControlClient.put() and download() report each event and resolve with the done event", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  await using server = serve((req) => app.fetch(req));
  const client = new ControlClient(server.url, { token: OWNER_TOKEN });
  const seen: string[] = [];
  const body = new Blob(["hello world"]).stream();
  const done = await client.put(body, {
    name: "hello.txt",
    size: 11,
    onEvent: (e) => seen.push(e.type),
  });
  assert.deepEqual(seen, ["stored", "replicated"]);
  assert.deepEqual([done.type, done.size, done.replicas], ["done", 11, { [PEER_B]: 1 }]);
  await assert.rejects(
    client.put(new Blob([new Uint8Array(1 << 20)]).stream(), { name: "n".repeat(256) }),
    { code: "invalid_query", status: 400, httpStatus: 400 },
  );
  const empty = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  await assert.rejects(client.put(empty), (err) => {
    assert.ok(err instanceof ControlError);
    assert.deepEqual([err.code, err.status], ["empty_payload", undefined]);
    return true;
  });

  const events: string[] = [];
  const got = await client.download(PARTIAL, {
    onEvent: (e) => events.push(e.type === "chunk" ? `chunk ${e.index}` : e.type),
  });
  assert.deepEqual(events, ["progress", "chunk 1", "chunk 2", "progress"]);
  assert.equal(got.resumed, 1);
  await assert.rejects(client.download("0".repeat(64)), { code: "unknown_payload" });
  const bytes = await new Response(await client.content(COMPLETE, { download: true })).bytes();
  assert.deepEqual(bytes, COMPLETE_BYTES);
});

Deno.test("ControlClient.followLog() yields records as they come until the stream ends", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  await using server = serve((req) => app.fetch(req));
  const client = new ControlClient(server.url, { token: OWNER_TOKEN });
  node.log.record("peer.start", {});
  const types: string[] = [];
  for await (const r of client.followLog({ type: "peer" })) {
    types.push(r.type);
    if (r.type === "peer.start") node.log.record("peer.stop", {});
    else node.stop();
  }
  assert.deepEqual(types, ["peer.start", "peer.stop"]);
});

Deno.test("ControlClient: nothing listening is PeerUnreachableError, a stall past timeoutMs PeerTimeoutError, a wrong answer ProtocolError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const gone = new ControlClient(`http://127.0.0.1:${closedPort}`);
  await assert.rejects(gone.status(), (err) => {
    assert.ok(err instanceof PeerUnreachableError);
    assert.deepEqual([err.code, err.status], ["peer_unreachable", 502]);
    return true;
  });
  await assert.rejects(gone.put(new Blob(["x"]).stream()), PeerUnreachableError);

  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  await using slow = serve(async (req) => {
    if (new URL(req.url).pathname === "/_p2p/payloads") {
      return Response.json({ payloads: [{ payloadId: "nope" }] });
    }
    if (new URL(req.url).pathname === "/_p2p/peers") return new Response("<html>");
    await released;
    return Response.json({});
  });
  const client = new ControlClient(slow.url, { timeoutMs: 100 });
  await assert.rejects(client.status(), PeerTimeoutError);
  release();
  await assert.rejects(client.payloads(), (err) => {
    assert.ok(err instanceof ProtocolError);
    assert.deepEqual([err.code, err.status], ["invalid_answer", 502]);
    assert.match(err.message, /\/_p2p\/payloads/);
    return true;
  });
  await assert.rejects(client.peers(), { code: "invalid_answer" });
  const aborted = new AbortController();
  aborted.abort(new Error("stopping"));
  await assert.rejects(client.status({ signal: aborted.signal }), /stopping/);
});

Deno.test("ControlClient without the owner's token, or with another, gets ControlError 401 unauthorized", async () => {
  await using node = await fakeNode();
  const app = createControlApp(node, { auth: ownerAuth() });
  await using server = serve((req) => app.fetch(req));
  for (
    const client of [new ControlClient(server.url), new ControlClient(server.url, { token: "x" })]
  ) {
    const err = await client.status().then(() => undefined, (e) => e);
    assert.ok(err instanceof ControlError, String(err));
    assert.equal(err.code, "unauthorized");
    assert.equal(err.httpStatus, 401);
  }
  const body = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
  const upload = await new ControlClient(server.url).put(body).then(() => undefined, (e) => e);
  assert.equal(upload?.code, "unauthorized");
});
