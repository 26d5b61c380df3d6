import assert from "node:assert/strict";
import {
  removalHeader,
  signedRegistration,
  type TestIdentity,
  testIdentity,
  testTracker,
} from "./_test_setup.ts";
import { DEFAULT_NUMWANT, ErrorBody, MAX_NUMWANT, PeerList } from "../proto/tracker.ts";
import { verifyRegistration } from "../proto/tracker_auth.ts";
import { acceptsGzip } from "./routes_peers.ts";

type T = Awaited<ReturnType<typeof testTracker>>;

async function list(t: T, query = ""): Promise<PeerList> {
  const res = await t.request(`/peers${query}`);
  assert.equal(res.status, 200, await res.clone().text());
  return PeerList.parse(await res.json());
}

/** Registers `n` unsigned peers straight through the store (what a listing's size needs). */
async function registerMany(t: T, n: number, from = 0): Promise<string[]> {
  const rows = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => t.store.registerPeer({ host: "127.0.1.1", port: 10_000 + from + i }, 60_000),
    ),
  );
  return rows.map((r) => r.row.peerId);
}

/** A signed `POST /peers` of `id` at 127.0.0.2:`port`. */
async function heartbeat(t: T, id: TestIdentity, port: number, name = "p"): Promise<void> {
  const res = await t.json(
    "/peers",
    await signedRegistration(id, { host: "127.0.0.2", port, name }),
  );
  assert.ok(res.ok, await res.text());
}

Deno.test("GET /peers lists a random sample of at most numwant live peers: 100 by default, 200 at most", async () => {
  await using t = await testTracker();
  const ids = new Set(await registerMany(t, 250));
  const plain = await list(t);
  assert.equal(plain.peers.length, DEFAULT_NUMWANT);
  assert.equal(plain.kind, "sample");
  assert.equal(plain.version, t.store.listing.version);
  const five = await list(t, "?numwant=5");
  assert.equal(five.peers.length, 5);
  assert.equal(new Set(five.peers.map((p) => p.peerId)).size, 5, "distinct peers");
  assert.ok(five.peers.every((p) => ids.has(p.peerId)));
  assert.equal((await list(t, "?numwant=100000")).peers.length, MAX_NUMWANT);
  assert.equal((await list(t, "?numwant=0")).peers.length, 0);
  // Callers get one of a pool of 16 samples: 40 calls see more than one of them
  // (odds of all 40 getting the same one: 1 in 10^46), never one peer twice.
  const seen = new Set<string>();
  for (let i = 0; i < 40; i++) {
    const ids = (await list(t)).peers.map((p) => p.peerId);
    assert.equal(new Set(ids).size, ids.length, "distinct peers");
    seen.add(ids.join());
  }
  assert.ok(seen.size > 1, `${seen.size} distinct samples in 40 calls`);
});

Deno.test("GET /peers?since= answers only what changed after that version; a heartbeat is no change", async () => {
  await using t = await testTracker();
  const [a, b, c] = [await testIdentity(), await testIdentity(), await testIdentity()];
  await heartbeat(t, a, 5801);
  await heartbeat(t, b, 5802);
  const first = await list(t);
  assert.equal(first.peers.length, 2);
  const v0 = first.version!;
  // Heartbeats that change nothing listed leave the version as it was.
  await heartbeat(t, a, 5801);
  await heartbeat(t, b, 5802);
  assert.deepEqual(await list(t, `?since=${v0}`), {
    peers: [],
    version: v0,
    kind: "changes",
    removed: [],
  });
  // b renames itself, c arrives, a leaves.
  await heartbeat(t, b, 5802, "renamed");
  await heartbeat(t, c, 5803);
  const del = await t.request(`/peers/${a.peerId}`, {
    method: "DELETE",
    headers: await removalHeader(a),
  });
  assert.equal(del.status, 200);
  const changes = await list(t, `?since=${v0}`);
  assert.equal(changes.kind, "changes");
  assert.deepEqual(changes.peers.map((p) => [p.peerId, p.name]), [
    [b.peerId, "renamed"],
    [c.peerId, "p"],
  ]);
  assert.deepEqual(changes.removed, [a.peerId]);
  assert.equal(changes.version, t.store.listing.version);
  // Every listed peer still carries its own signed registration.
  for (const p of changes.peers) assert.ok(await verifyRegistration(p.record!));
  assert.deepEqual((await list(t, `?since=${changes.version}`)).peers, []);
  // More changes than numwant: a page, and the next call goes on from where it ended.
  const page = await list(t, `?since=${v0}&numwant=1`);
  assert.deepEqual([page.peers.map((p) => p.peerId), page.more], [[b.peerId], true]);
  const rest = await list(t, `?since=${page.version}&numwant=1`);
  assert.deepEqual(rest.peers.map((p) => p.peerId), [c.peerId]);
  assert.deepEqual(rest.removed, [a.peerId]);
  assert.equal(rest.more, undefined);
});

Deno.test("GET /peers with a since the tracker does not cover (too old, from the future) answers a sample", async () => {
  await using t = await testTracker();
  await registerMany(t, 3);
  const version = t.store.listing.version;
  for (const since of [0, version + 1_000]) {
    const res = await list(t, `?since=${since}`);
    assert.equal(res.kind, "sample");
    assert.equal(res.peers.length, 3);
  }
  // A restart (a reload of the index) starts a later version: old ones get a sample.
  await t.store.load();
  assert.ok(t.store.listing.version > version);
  assert.equal((await list(t, `?since=${version}`)).kind, "sample");
});

Deno.test("GET /peers answers 400 invalid_query for a numwant or since that is not a whole number", async () => {
  await using t = await testTracker();
  for (
    const q of [
      "numwant=abc",
      "numwant=-1",
      "numwant=1.5",
      "numwant=",
      "numwant=9999999",
      "since=x",
      "since=-3",
      "since=1e9",
      "since=99999999999999999",
    ]
  ) {
    const res = await t.request(`/peers?${q}`);
    assert.equal(res.status, 400, q);
    const body = ErrorBody.parse(await res.json());
    assert.equal(body.error.code, "invalid_query", q);
    assert.ok(!body.error.message.includes("\n"), body.error.message);
  }
  assert.equal((await t.request("/peers?numwant=3&since=0")).status, 200);
});

Deno.test("the whole listing is built once per change of the peer set: on register, delete and expiry, not per request or heartbeat", async () => {
  await using t = await testTracker({ peerTtlMs: 30_000 });
  const builds = () => t.store.listing.builds.all;
  const [a, b] = [await testIdentity(), await testIdentity()];
  await heartbeat(t, a, 5801);
  await list(t);
  await list(t);
  assert.equal(builds(), 1);
  t.advance(1_000);
  await heartbeat(t, a, 5801);
  assert.equal((await list(t)).peers.length, 1);
  assert.equal(builds(), 1, "a heartbeat that changes nothing listed keeps the answer");
  await heartbeat(t, b, 5802);
  assert.equal((await list(t)).peers.length, 2);
  assert.equal(builds(), 2, "a registration");
  await t.request(`/peers/${b.peerId}`, { method: "DELETE", headers: await removalHeader(b) });
  assert.equal((await list(t)).peers.length, 1);
  assert.equal(builds(), 3, "a removal");
  // a's time runs out: gone from the answer before the sweep removes it.
  t.advance(31_000);
  assert.equal((await list(t)).peers.length, 0);
  assert.equal(builds(), 4, "an expiry");
  const before = t.store.listing.version;
  assert.equal(await t.store.expirePeers(), 1);
  const after = await list(t, `?since=${before}`);
  assert.deepEqual([after.peers, after.removed], [[], [a.peerId]]);
});

Deno.test("a listed peer's lastSeen lags its heartbeats by at most the listing's coarseness", async () => {
  await using t = await testTracker();
  const a = await testIdentity();
  await heartbeat(t, a, 5801);
  const seen = async () => Date.parse((await list(t)).peers[0].lastSeen);
  const first = await seen();
  t.advance(2_000);
  await heartbeat(t, a, 5801);
  assert.equal(await seen(), first, "within 5 s: the entry as serialized");
  t.advance(4_000);
  await heartbeat(t, a, 5801);
  assert.equal(await seen(), t.store.now(), "past 5 s: serialized again");
});

Deno.test("TrackerStore.registerPeer() of many peers at once shares commits and answers each once committed", async () => {
  await using t = await testTracker();
  const before = { ...t.store.commits.stats };
  const answered = await Promise.all(
    Array.from(
      { length: 30 },
      (_, i) =>
        t.store.registerPeer({ host: "127.0.1.2", port: 20_000 + i }, 60_000).then(async (r) => {
          const stored = await t.kv.get(["peer", r.row.peerId]);
          return stored.versionstamp !== null;
        }),
    ),
  );
  assert.ok(answered.every(Boolean), "each registration is in KV when it is answered");
  const commits = t.store.commits.stats.commits - before.commits;
  assert.ok(commits < 30, `${commits} commits for 30 registrations`);
});

Deno.test("GET /peers gzips the answers kept whole (the whole listing, samples) for a caller that accepts gzip", async () => {
  await using t = await testTracker();
  await registerMany(t, 3);
  const get = (q: string, enc: string) =>
    t.request(`/peers${q}`, { headers: { "accept-encoding": enc } });
  const gunzip = (res: Response) =>
    new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
  const plain = await (await t.request("/peers")).text();
  const res = await get("", "gzip, br");
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.equal(res.headers.get("vary"), "accept-encoding");
  assert.equal(await gunzip(res), plain);
  const sample = await get("?numwant=2", "gzip");
  assert.equal(sample.headers.get("content-encoding"), "gzip");
  const sampled = PeerList.parse(JSON.parse(await gunzip(sample)));
  assert.equal(sampled.peers.length, 2);
  assert.equal(sampled.kind, "sample");
  // Not for a caller that refuses it, nor for changes (made per call).
  const since = `?since=${t.store.listing.version - 1}`;
  for (const [q, enc] of [["", "gzip;q=0"], ["", "identity"], ["", "br"], [since, "gzip"]]) {
    const other = await get(q, enc);
    assert.equal(other.headers.get("content-encoding"), null, `${q} ${enc}`);
    PeerList.parse(await other.json());
  }
});

Deno.test("acceptsGzip() reads Accept-Encoding: gzip or *, unless its q is 0", () => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["gzip", true],
    ["gzip,br", true],
    ["br, GZIP;q=0.5", true],
    ["gzip;q=0", false],
    ["gzip; q=0.0", false],
    ["*", true],
    ["deflate, br", false],
  ];
  for (const [header, want] of cases) assert.equal(acceptsGzip(header), want, String(header));
});
