import assert from "node:assert/strict";
import { P2pError } from "../proto/errors.ts";
import { TrackerClient, TrackerError } from "./tracker_client.ts";
import { loadIdentity } from "./identity.ts";
import { createHash } from "node:crypto";
import {
  parsePeerSignature,
  parseRequestAuth,
  PEER_SIGNATURE_HEADER,
  peerRemoveBytes,
  verifyRegistration,
  verifyRequestAuth,
} from "../proto/tracker_auth.ts";
import { fromBase64Url } from "../proto/ids.ts";
import { RegisterPeerRequest } from "../proto/tracker.ts";
import { verifySignature } from "../proto/signature.ts";
import { testTracker } from "../tracker/_test_setup.ts";
import { bytesStream, tempStore } from "./_fakes.ts";

/** A fake tracker on 127.0.0.1 answering every request with `answer`. */
function fakeTracker(answer: (req: Request) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

Deno.test("TrackerClient keeps the tracker's error code and status in a TrackerError", async () => {
  await using tracker = fakeTracker(() =>
    Response.json({ error: { code: "unknown_peer", message: "No live peer" } }, { status: 404 })
  );
  const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-client-" });
  const identity = await loadIdentity(dir);
  await Deno.remove(dir, { recursive: true });
  const client = new TrackerClient(tracker.url, { identity });
  const err = await client.peers().catch((e) => e);
  assert.ok(err instanceof TrackerError && err instanceof P2pError);
  assert.equal(err.code, "unknown_peer");
  assert.equal(err.httpStatus, 404);
  assert.match(err.message, /404 to GET \/peers: No live peer/);
  await client.unregister(identity.peerId); // a peer the tracker no longer knows is fine
});

Deno.test("TrackerClient proves the network key on every request and signs its own record", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-client-" });
  const identity = await loadIdentity(dir);
  await Deno.remove(dir, { recursive: true });
  const seen: { method: string; path: string; proofOk: boolean; bodyOk: boolean }[] = [];
  let registered: unknown;
  let removal: boolean | undefined;
  await using tracker = fakeTracker(async (req) => {
    const url = new URL(req.url);
    const auth = parseRequestAuth(req.headers.get("authorization"))!;
    const body = new Uint8Array(await req.arrayBuffer());
    seen.push({
      method: req.method,
      path: url.pathname,
      proofOk: await verifyRequestAuth(key, req.method, url.pathname + url.search, auth),
      bodyOk: createHash("sha256").update(body).digest("hex") === auth.sha256,
    });
    if (req.method === "POST") {
      registered = JSON.parse(new TextDecoder().decode(body));
      return Response.json({ error: { code: "x", message: "stop here" } }, { status: 400 });
    }
    const sig = parsePeerSignature(req.headers.get(PEER_SIGNATURE_HEADER))!;
    removal = await verifySignature(
      identity.publicKey,
      peerRemoveBytes(identity.peerId, sig.signedAt),
      fromBase64Url(sig.signature),
    );
    return Response.json({ removed: identity.peerId });
  });
  const client = new TrackerClient(tracker.url, { networkKey: key, identity });
  await client.register({ peerId: identity.peerId, port: 5801, name: "a" }).catch(() => {});
  await client.unregister(identity.peerId);
  assert.deepEqual(seen.map((s) => [s.method, s.path, s.proofOk, s.bodyOk]), [
    ["POST", "/peers", true, true],
    ["DELETE", `/peers/${identity.peerId}`, true, true],
  ]);
  assert.ok(await verifyRegistration(RegisterPeerRequest.parse(registered)));
  assert.equal(removal, true);
});

Deno.test("TrackerClient refuses an answer that does not fit its schema", async () => {
  await using tracker = fakeTracker(() => Response.json({ peers: [{ peerId: "x" }] }));
  const err = await new TrackerClient(tracker.url).peers().catch((e) => e);
  assert.ok(err instanceof TrackerError);
  assert.equal(err.code, "tracker_bad_answer");
  assert.equal(err.httpStatus, 200);
});

Deno.test("TrackerClient says a tracker that does not answer is unreachable", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const err = await new TrackerClient(`http://127.0.0.1:${port}`).peers().catch((e) => e);
  assert.ok(err instanceof TrackerError);
  assert.equal(err.code, "tracker_unreachable");
  assert.equal(err.httpStatus, 0);
});

Deno.test("TrackerClient.withdraw() takes this peer off a payload's holders with a signed announcement of no chunk, and announce() puts it back", async () => {
  await using t = await testTracker();
  // The tracker app behind a real socket, every client seen as 127.0.0.9.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      return t.request(url.pathname + url.search, {
        method: req.method,
        headers: req.headers,
        body: req.body,
      });
    },
  );
  await using store = await tempStore();
  try {
    const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-client-" });
    const identity = await loadIdentity(dir);
    await Deno.remove(dir, { recursive: true });
    const client = new TrackerClient(`http://127.0.0.1:${server.addr.port}`, { identity });
    await client.register({ peerId: identity.peerId, port: 5801, name: "a" });
    const { payloadId } = await store.importStream(bytesStream(1000));
    await client.publish(payloadId, store.getManifest(payloadId)!);
    await client.announce(payloadId, identity.peerId, store.have(payloadId));
    const holders = async () => (await client.holders(payloadId)).peers.map((h) => h.peerId);
    assert.deepEqual(await holders(), [identity.peerId]);

    assert.equal((await client.withdraw(payloadId, identity.peerId)).count, 0);
    assert.deepEqual(await holders(), [], "no longer listed");
    await client.announce(payloadId, identity.peerId, store.have(payloadId));
    assert.deepEqual(await holders(), [identity.peerId], "listed again once it holds chunks");
  } finally {
    await server.shutdown();
  }
});

Deno.test("TrackerClient.listPeers() asks a protected tracker for a sample, then for the changes since its version", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  await using t = await testTracker({ networkKey: key });
  await using tracker = fakeTracker(async (req) => {
    const url = new URL(req.url);
    const body = req.body ? await req.arrayBuffer() : undefined;
    return await t.request(url.pathname + url.search, {
      method: req.method,
      headers: req.headers,
      ...(body ? { body } : {}),
    });
  });
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-client-" });
    const identity = await loadIdentity(dir);
    await Deno.remove(dir, { recursive: true });
    const client = new TrackerClient(tracker.url, { identity, networkKey: key });
    await client.register({ host: "127.0.0.2", port: 6000 + i });
    clients.push({ client, identity });
  }
  const [a] = clients;
  const sample = await a.client.listPeers({ numwant: 2 });
  assert.equal(sample.kind, "sample");
  assert.equal(sample.peers.length, 2);
  assert.equal((await a.client.peers()).length, 3);
  await clients[1].client.unregister(clients[1].identity.peerId);
  const changes = await a.client.listPeers({ numwant: 2, since: sample.version });
  assert.deepEqual([changes.kind, changes.peers, changes.removed], [
    "changes",
    [],
    [clients[1].identity.peerId],
  ]);
});
