import assert from "node:assert/strict";
import {
  removalHeader,
  signedHave,
  signedRegistration,
  type TestIdentity,
  testIdentity,
  testTracker,
} from "./_test_setup.ts";
import { CHUNK_SIZE, payloadIdOf, sha256Hex } from "../proto/manifest.ts";
import { toBase64 } from "../proto/ids.ts";
import { bitfieldFromIndices } from "../proto/bitfield.ts";
import {
  ErrorBody,
  HolderList,
  ManifestResponse,
  PayloadInfo,
  PeerInfo,
  PeerList,
  RegisterPeerResponse,
  UploadResponse,
} from "../proto/tracker.ts";
import { ActivityPage } from "../proto/activity.ts";
import { verifyRegistration } from "../proto/tracker_auth.ts";

async function errorOf(res: Response, status: number, code: string): Promise<string> {
  assert.equal(
    res.status,
    status,
    `expected ${status}, got ${res.status}: ${await res.clone().text()}`,
  );
  const body = ErrorBody.parse(await res.json());
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 10, body.error.message);
  return body.error.message;
}

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

type T = Awaited<ReturnType<typeof testTracker>>;
const identities = new WeakMap<T, Map<string, TestIdentity>>();

/**
 * The identity a test means by `name` (a made-up peerId, or a host:port when the
 * test gives none): one per name and tracker, made on first use.
 */
async function idOf(t: T, name: string): Promise<TestIdentity> {
  let ids = identities.get(t);
  if (!ids) identities.set(t, ids = new Map());
  let id = ids.get(name);
  if (!id) ids.set(name, id = await testIdentity());
  return id;
}

/** Registers a peer with a record signed by the identity `body.peerId` or its address names. */
async function register(
  t: T,
  body: { host?: string; port: number; peerId?: string; name?: string },
) {
  const { peerId, ...fields } = body;
  const id = await idOf(t, peerId ?? `${body.host ?? ""}:${body.port}`);
  const res = await t.json("/peers", await signedRegistration(id, fields));
  assert.ok(res.status === 200 || res.status === 201, await res.clone().text());
  return RegisterPeerResponse.parse(await res.json());
}

async function upload(t: Awaited<ReturnType<typeof testTracker>>, data: Uint8Array) {
  const res = await t.request("/payloads", {
    method: "POST",
    body: data as Uint8Array<ArrayBuffer>,
    headers: { "content-type": "application/octet-stream" },
  });
  assert.ok(res.ok, await res.clone().text());
  return UploadResponse.parse(await res.json());
}

Deno.test("POST /peers takes the caller's address when host is missing or a wildcard", async () => {
  await using t = await testTracker();
  const a = await register(t, { port: 5801 });
  assert.equal(a.peer.host, "127.0.0.9");
  assert.equal(a.created, true);
  const b = await register(t, { host: "0.0.0.0", port: 5802 });
  assert.equal(b.peer.host, "127.0.0.9");
  const c = await register(t, { host: "127.0.0.5", port: 5801 });
  assert.equal(c.peer.host, "127.0.0.5");
});

Deno.test("POST /peers again for the same (host, port) refreshes one entry with one peerId", async () => {
  await using t = await testTracker();
  const first = await register(t, { host: "127.0.0.2", port: 5801, name: "a" });
  t.advance(10_000);
  const again = await register(t, { host: "127.0.0.2", port: 5801, name: "a2" });
  assert.equal(again.created, false);
  assert.equal(again.peer.peerId, first.peer.peerId);
  assert.equal(again.peer.registeredAt, first.peer.registeredAt);
  assert.ok(again.peer.expiresAt > first.peer.expiresAt);
  assert.equal(again.peer.name, "a2");
  const list = PeerList.parse(await (await t.request("/peers")).json());
  assert.equal(list.peers.length, 1);
  // The listing is made once per change: the next heartbeat shows in it at once.
  await register(t, { host: "127.0.0.2", port: 5801, name: "a3" });
  const later = PeerList.parse(await (await t.request("/peers")).json());
  assert.deepEqual(later.peers.map((p) => p.name), ["a3"]);
});

Deno.test("POST /peers keeps one entry under concurrent registrations of one address", async () => {
  await using t = await testTracker();
  const id = await testIdentity();
  const bodies = await Promise.all(
    Array.from({ length: 50 }, () => signedRegistration(id, { host: "127.0.0.3", port: 6000 })),
  );
  const answers = await Promise.all(bodies.map((b) => t.json("/peers", b)));
  // Each heartbeat is signed later than the one before: one that arrives after a later
  // one is stale (409) and changes nothing.
  const ok = [];
  for (const res of answers) {
    if (res.status === 409) await errorOf(res, 409, "stale_record");
    else ok.push(RegisterPeerResponse.parse(await res.json()));
  }
  assert.ok(ok.length >= 1);
  assert.deepEqual(new Set(ok.map((a) => a.peer.peerId)), new Set([id.peerId]));
  assert.equal(ok.filter((a) => a.created).length, 1);
  const list = PeerList.parse(await (await t.request("/peers")).json());
  assert.equal(list.peers.length, 1);
});

Deno.test("POST /peers with another peerId for a taken address replaces the old peer only from that host", async () => {
  await using t = await testTracker();
  const [a, b] = [await testIdentity(), await testIdentity()];
  const at = { host: "127.0.0.2", port: 5801 };
  const post = async (body: unknown, remote: string) =>
    await t.request("/peers", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    }, remote);
  assert.equal((await post(await signedRegistration(a, at), "127.0.0.9")).status, 201);
  // A caller elsewhere cannot push a live peer out of its address.
  await errorOf(await post(await signedRegistration(b, at), "127.0.0.9"), 403, "address_taken");
  // A new identity at that host (a peer restarted with a fresh data dir) may.
  const res = await post(await signedRegistration(b, at), "127.0.0.2");
  assert.equal(res.status, 201);
  assert.equal(RegisterPeerResponse.parse(await res.json()).peer.peerId, b.peerId);
  const list = PeerList.parse(await (await t.request("/peers")).json());
  assert.deepEqual(list.peers.map((p) => p.peerId), [b.peerId]);
  await errorOf(await t.request(`/peers/${a.peerId}`), 404, "unknown_peer");
});

Deno.test("POST /peers answers without the caller's own record; GET /peers/{id} passes it on as signed", async () => {
  await using t = await testTracker();
  const a = await register(t, { host: "127.0.0.2", port: 5801, name: "a" });
  assert.equal(a.peer.record, undefined);
  assert.equal(a.peer.name, "a");
  const byId = PeerInfo.parse(await (await t.request(`/peers/${a.peer.peerId}`)).json());
  assert.ok(byId.record && await verifyRegistration(byId.record));
});

Deno.test("POST /peers for a known peerId at a new address moves it", async () => {
  await using t = await testTracker();
  const id = "c".repeat(40);
  await register(t, { host: "127.0.0.2", port: 5801, peerId: id });
  const moved = await register(t, { host: "127.0.0.4", port: 5901, peerId: id });
  assert.equal(moved.peer.host, "127.0.0.4");
  const list = PeerList.parse(await (await t.request("/peers")).json());
  assert.equal(list.peers.length, 1);
  // The old address is free again: a newcomer there gets a new id.
  const newcomer = await register(t, { host: "127.0.0.2", port: 5801 });
  assert.notEqual(newcomer.peer.peerId, id);
});

Deno.test("GET /peers drops a peer after its TTL and upkeep records the expiry", async () => {
  await using t = await testTracker({ peerTtlMs: 30_000 });
  const a = await register(t, { host: "127.0.0.2", port: 5801 });
  t.advance(29_000);
  assert.equal(PeerList.parse(await (await t.request("/peers")).json()).peers.length, 1);
  t.advance(2_000);
  assert.equal(PeerList.parse(await (await t.request("/peers")).json()).peers.length, 0);
  await errorOf(await t.request(`/peers/${a.peer.peerId}`), 404, "unknown_peer");
  assert.equal(await t.store.expirePeers(), 1);
  const page = ActivityPage.parse(await (await t.request("/activity?type=peer.expire")).json());
  assert.equal(page.records.length, 1);
  assert.equal(page.records[0].peerId, a.peer.peerId);
  // After expiry the address may be registered afresh.
  const again = await register(t, { host: "127.0.0.2", port: 5801 });
  assert.equal(again.created, true);
});

Deno.test("DELETE /peers/{id} removes a peer and answers 404 the second time", async () => {
  await using t = await testTracker();
  const a = await register(t, { host: "127.0.0.2", port: 5801 });
  const id = await idOf(t, "127.0.0.2:5801");
  const del = async () =>
    await t.request(`/peers/${a.peer.peerId}`, {
      method: "DELETE",
      headers: await removalHeader(id),
    });
  const res = await del();
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { removed: a.peer.peerId });
  await errorOf(await del(), 404, "unknown_peer");
  await errorOf(await t.request(`/peers/nothex`, { method: "DELETE" }), 400, "invalid_id");
});

Deno.test("POST /peers rejects malformed JSON, wrong types and missing fields with 400", async () => {
  await using t = await testTracker();
  await errorOf(await t.json("/peers", "{oops"), 400, "bad_json");
  const wrong = await errorOf(await t.json("/peers", { port: "5801" }), 400, "invalid_body");
  assert.match(wrong, /port/);
  await errorOf(await t.json("/peers", {}), 400, "invalid_body");
  await errorOf(await t.json("/peers", { port: 70000 }), 400, "invalid_body");
  await errorOf(await t.json("/peers", { port: 1, peerId: "XYZ" }), 400, "invalid_body");
  await errorOf(await t.json("/peers", [1, 2]), 400, "invalid_body");
  await errorOf(
    await t.json("/peers", { port: 1, name: "x".repeat(70_000) }),
    413,
    "payload_too_large",
  );
  const body = ErrorBody.parse(await (await t.json("/peers", { port: "x" })).json());
  assert.equal(body.error.issues?.[0].path, "port");
});

Deno.test("POST /payloads gives the same id for the same bytes in any of the three forms", async () => {
  await using t = await testTracker();
  const text = "hello, payload";
  const plain = await t.request("/payloads", {
    method: "POST",
    body: text,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
  assert.equal(plain.status, 201);
  const a = UploadResponse.parse(await plain.json());
  const b = UploadResponse.parse(await (await t.json("/payloads", { payload: text })).json());
  const c = await upload(t, new TextEncoder().encode(text));
  assert.equal(a.payloadId, b.payloadId);
  assert.equal(a.payloadId, c.payloadId);
  assert.equal(b.created, false);
  assert.deepEqual({ size: a.size, chunks: a.chunks, chunkSize: a.chunkSize }, {
    size: 14,
    chunks: 1,
    chunkSize: CHUNK_SIZE,
  });
  const d = await upload(t, new TextEncoder().encode(text + "!"));
  assert.notEqual(d.payloadId, a.payloadId);
});

Deno.test("POST /payloads derives the id from the manifest of SHA-256 chunk hashes", async () => {
  await using t = await testTracker();
  const data = bytes(2 * CHUNK_SIZE + 777);
  const up = await upload(t, data);
  assert.equal(up.chunks, 3);
  const m = ManifestResponse.parse(await (await t.request(`/payloads/${up.payloadId}`)).json());
  const expected = [
    await sha256Hex(data.subarray(0, CHUNK_SIZE)),
    await sha256Hex(data.subarray(CHUNK_SIZE, 2 * CHUNK_SIZE)),
    await sha256Hex(data.subarray(2 * CHUNK_SIZE)),
  ];
  assert.deepEqual(m.chunks, expected);
  assert.equal(await payloadIdOf(m), up.payloadId);
  const chunk = await t.request(`/payloads/${up.payloadId}/chunks/2`);
  assert.equal(chunk.headers.get("x-chunk-sha256"), expected[2]);
  assert.deepEqual(new Uint8Array(await chunk.arrayBuffer()), data.subarray(2 * CHUNK_SIZE));
  const content = await t.request(`/payloads/${up.payloadId}/content`);
  assert.equal(content.headers.get("content-length"), String(data.length));
  assert.deepEqual(new Uint8Array(await content.arrayBuffer()), data);
});

Deno.test("POST /payloads refuses oversize bodies with 413, declared or streamed", async () => {
  await using t = await testTracker({ maxUpload: 1000 });
  const declared = await errorOf(
    await t.request("/payloads", {
      method: "POST",
      body: bytes(1001) as Uint8Array<ArrayBuffer>,
      headers: { "content-type": "application/octet-stream" },
    }),
    413,
    "payload_too_large",
  );
  assert.match(declared, /p2p put/);
  const stream = ReadableStream.from([bytes(600), bytes(600)]);
  await errorOf(
    await t.request("/payloads", {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/octet-stream" },
    }),
    413,
    "payload_too_large",
  );
  await errorOf(await t.json("/payloads", { payload: "x".repeat(1001) }), 413, "payload_too_large");
  const ok = await upload(t, bytes(1000));
  assert.equal(ok.size, 1000);
});

Deno.test("POST /payloads rejects empty bodies, unknown types and bad names", async () => {
  await using t = await testTracker();
  await errorOf(
    await t.request("/payloads", { method: "POST", headers: { "content-type": "text/plain" } }),
    400,
    "empty_payload",
  );
  await errorOf(
    await t.request("/payloads", {
      method: "POST",
      body: "a=b",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    }),
    415,
    "unsupported_media_type",
  );
  await errorOf(await t.json("/payloads", { payload: 42 }), 400, "invalid_body");
  await errorOf(
    await t.request(`/payloads?name=${"n".repeat(300)}`, {
      method: "POST",
      body: "x",
      headers: { "content-type": "text/plain" },
    }),
    400,
    "invalid_query",
  );
});

Deno.test("GET /payloads lists payloads page by page", async () => {
  await using t = await testTracker();
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++) ids.add((await upload(t, bytes(10, i + 1))).payloadId);
  const seen = new Set<string>();
  let cursor: string | null = null;
  do {
    const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await (await t.request(`/payloads?limit=2${q}`)).json();
    for (const p of page.payloads) seen.add(PayloadInfo.parse(p).payloadId);
    cursor = page.cursor;
  } while (cursor);
  assert.deepEqual(seen, ids);
  await errorOf(await t.request("/payloads?limit=0"), 400, "invalid_query");
  await errorOf(await t.request("/payloads?cursor=garbage"), 400, "invalid_query");
});

Deno.test("PUT /payloads/{id} publishes a verified manifest without bytes", async () => {
  await using t = await testTracker();
  const data = bytes(CHUNK_SIZE + 5, 9);
  const manifest = {
    size: data.length,
    chunkSize: CHUNK_SIZE,
    chunks: [
      await sha256Hex(data.subarray(0, CHUNK_SIZE)),
      await sha256Hex(data.subarray(CHUNK_SIZE)),
    ],
  };
  const id = await payloadIdOf(manifest);
  const wrongId = "f".repeat(64);
  await errorOf(await t.json(`/payloads/${wrongId}`, manifest, "PUT"), 400, "manifest_mismatch");
  await errorOf(
    await t.json(`/payloads/${id}`, { ...manifest, chunkSize: 4096 }, "PUT"),
    400,
    "invalid_body",
  );
  const res = await t.json(`/payloads/${id}`, manifest, "PUT");
  assert.equal(res.status, 201);
  assert.equal(PayloadInfo.parse(await res.json()).stored, false);
  await errorOf(await t.request(`/payloads/${id}/chunks/0`), 404, "not_stored");
  await errorOf(await t.request(`/payloads/${id}/content`), 404, "not_stored");
  // Uploading the bytes later makes the tracker a holder.
  const up = await upload(t, data);
  assert.equal(up.payloadId, id);
  const m = ManifestResponse.parse(await (await t.request(`/payloads/${id}`)).json());
  assert.equal(m.stored, true);
});

Deno.test("POST /payloads/{id}/have records positions and GET …/peers reports them", async () => {
  await using t = await testTracker();
  const up = await upload(t, bytes(3 * CHUNK_SIZE + 1));
  const a = await register(t, { host: "127.0.0.2", port: 5801, name: "a" });
  await register(t, { host: "127.0.0.3", port: 5801, name: "b", peerId: "b".repeat(40) });
  const [idA, idB] = [await idOf(t, "127.0.0.2:5801"), await idOf(t, "b".repeat(40))];
  const viaChunks = await t.json(
    `/payloads/${up.payloadId}/have`,
    await signedHave(idA, up.payloadId, { chunks: [0, 3] }),
  );
  assert.equal(viaChunks.status, 200);
  assert.deepEqual(await viaChunks.json(), {
    payloadId: up.payloadId,
    peerId: a.peer.peerId,
    count: 2,
  });
  const bits = toBase64(bitfieldFromIndices(4, [1, 2, 3]));
  assert.equal(
    (await t.json(
      `/payloads/${up.payloadId}/have`,
      await signedHave(idB, up.payloadId, { have: bits }),
    ))
      .status,
    200,
  );
  const holders = HolderList.parse(
    await (await t.request(`/payloads/${up.payloadId}/peers`)).json(),
  );
  assert.equal(holders.chunks, 4);
  assert.equal(holders.tracker.holds, true);
  const byName = Object.fromEntries(holders.peers.map((h) => [h.name, h]));
  assert.equal(byName.a.ranges, "0,3");
  assert.equal(byName.b.ranges, "1-3");
  assert.equal(byName.b.have, bits);
  // An expired holder is no longer listed.
  t.advance(61_000);
  await register(t, { host: "127.0.0.3", port: 5801, name: "b", peerId: "b".repeat(40) });
  const later = HolderList.parse(await (await t.request(`/payloads/${up.payloadId}/peers`)).json());
  assert.deepEqual(later.peers.map((h) => h.name), ["b"]);
});

Deno.test("POST /payloads/{id}/have rejects unknown peers and malformed positions", async () => {
  await using t = await testTracker();
  const up = await upload(t, bytes(2 * CHUNK_SIZE));
  await register(t, { host: "127.0.0.2", port: 5801 });
  const a = await idOf(t, "127.0.0.2:5801");
  const id = up.payloadId;
  const path = `/payloads/${id}/have`;
  const stranger = await testIdentity();
  await errorOf(
    await t.json(path, await signedHave(stranger, id, { chunks: [0] })),
    404,
    "unknown_peer",
  );
  await errorOf(await t.json(path, await signedHave(a, id, { chunks: [2] })), 400, "invalid_body");
  await errorOf(await t.json(path, await signedHave(a, id, { have: "AAAA" })), 400, "invalid_body");
  await errorOf(await t.json(path, await signedHave(a, id, { have: "!!" })), 400, "invalid_body");
  await errorOf(
    await t.json(path, await signedHave(a, id, { have: toBase64(new Uint8Array([0xff])) })),
    400,
    "invalid_body",
  );
  await errorOf(await t.json(path, await signedHave(a, id, {})), 400, "invalid_body");
  await errorOf(
    await t.json(`/payloads/${"e".repeat(64)}/have`, await signedHave(a, id, { chunks: [0] })),
    404,
    "unknown_payload",
  );
});

Deno.test("GET routes answer 400 for malformed ids and 404 for unknown ones and routes", async () => {
  await using t = await testTracker();
  await errorOf(await t.request("/payloads/xyz"), 400, "invalid_id");
  await errorOf(await t.request(`/payloads/${"a".repeat(64)}`), 404, "unknown_payload");
  await errorOf(await t.request(`/payloads/${"a".repeat(64)}/peers`), 404, "unknown_payload");
  const up = await upload(t, bytes(10));
  await errorOf(await t.request(`/payloads/${up.payloadId}/chunks/1`), 400, "invalid_index");
  await errorOf(await t.request(`/payloads/${up.payloadId}/chunks/-1`), 400, "invalid_index");
  await errorOf(await t.request("/nope"), 404, "not_found");
  await errorOf(await t.request("/peers", { method: "PATCH" }), 404, "not_found");
  await errorOf(await t.request("/activity?limit=5000"), 400, "invalid_query");
});

Deno.test("GET /activity returns records in order, paged and filtered by type", async () => {
  await using t = await testTracker();
  for (let i = 0; i < 5; i++) await register(t, { host: "127.0.0.2", port: 6000 + i });
  await upload(t, bytes(10));
  await t.request("/peers");
  await t.json("/peers", "{bad");
  const all = ActivityPage.parse(await (await t.request("/activity?limit=1000")).json());
  const ids = all.records.map((r) => r.id);
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  const types = all.records.map((r) => r.type);
  for (const type of ["peer.register", "payload.upload", "query", "error"]) {
    assert.ok(types.includes(type), `${type} in ${types}`);
  }
  const page1 = ActivityPage.parse(await (await t.request("/activity?type=peer&limit=3")).json());
  assert.equal(page1.records.length, 3);
  assert.ok(page1.records.every((r) => r.type.startsWith("peer.")));
  const page2 = ActivityPage.parse(
    await (await t.request(`/activity?type=peer&limit=3&since=${page1.next}`)).json(),
  );
  assert.equal(page2.records.length, 2);
  assert.ok(page2.records[0].id > page1.records[2].id);
  const lines = (await Deno.readTextFile(`${t.dir}/activity.jsonl`)).trim().split("\n");
  assert.equal(lines.length, all.records.length);
});

Deno.test("GET /metrics counts requests by route and status in Prometheus format", async () => {
  await using t = await testTracker();
  await register(t, { host: "127.0.0.2", port: 5801 });
  await upload(t, bytes(100));
  await t.request("/peers");
  await t.request("/nope");
  const text = await (await t.request("/metrics")).text();
  assert.match(
    text,
    /p2p_tracker_http_requests_total\{method="POST",route="\/peers",status="201"\} 1/,
  );
  assert.match(
    text,
    /p2p_tracker_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/,
  );
  assert.match(text, /^p2p_tracker_live_peers 1$/m);
  assert.match(text, /^p2p_tracker_payloads 1$/m);
  assert.match(text, /^p2p_tracker_stored_bytes 100$/m);
  assert.match(text, /^p2p_tracker_peer_writes 1$/m);
  assert.match(text, /^p2p_tracker_peer_commits 1$/m);
});

Deno.test("a storage failure answers 503 JSON and leaves an activity record in the log file", async () => {
  await using t = await testTracker();
  t.kv.close();
  const res = await t.json(
    "/peers",
    await signedRegistration(await testIdentity(), { host: "127.0.0.2", port: 5801 }),
  );
  await errorOf(res, 503, "unavailable");
  await t.activity.flush().catch(() => {});
  const lines = (await Deno.readTextFile(`${t.dir}/activity.jsonl`)).trim().split("\n");
  const last = JSON.parse(lines[lines.length - 1]);
  assert.equal(last.type, "storage.error");
  assert.equal(last.status, 503);
});

Deno.test("a stored chunk that fails its hash answers 503 unavailable, a storage failure", async () => {
  await using t = await testTracker();
  const data = bytes(100);
  const up = await upload(t, data);
  const hash = await sha256Hex(data);
  await t.kv.set(["chunk", hash, 0], bytes(100, 2));
  const res = await t.request(`/payloads/${up.payloadId}/chunks/0`);
  const message = await errorOf(res, 503, "unavailable");
  assert.match(message, /corrupt/);
  const page = ActivityPage.parse(await (await t.request("/activity?type=storage.error")).json());
  assert.equal(page.records.length, 1);
  assert.equal(page.records[0].code, "unavailable");
});

Deno.test("GET /payloads/{id}/content names the file after the payload in Content-Disposition", async () => {
  await using t = await testTracker();
  const res = await t.request("/payloads?name=r%C3%A9sum%C3%A9%20v2.txt", {
    method: "POST",
    body: "some text",
    headers: { "content-type": "text/plain" },
  });
  const up = UploadResponse.parse(await res.json());
  const content = await t.request(`/payloads/${up.payloadId}/content`);
  assert.equal(await content.text(), "some text");
  const disposition = content.headers.get("content-disposition") ?? "";
  assert.match(disposition, /^attachment; filename="r.sum. v2\.txt"; filename\*=UTF-8''/);
});
