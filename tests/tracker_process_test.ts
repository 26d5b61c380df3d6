/**
 * End-to-end tests of `p2p tracker` as a real child process: real sockets on
 * 127.0.0.1 (port 0), real KV files in a temporary folder, real signals.
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnTracker, tempDir, type TrackerProcess } from "./_tracker_process.ts";
import { ActivityPage, ActivityRecord } from "../proto/activity.ts";
import { toBase64 } from "../proto/ids.ts";
import {
  CHUNK_SIZE,
  Chunker,
  type Manifest,
  payloadIdOf,
  sha256Hex,
  verifyChunk,
} from "../proto/manifest.ts";
import {
  ErrorBody,
  HolderList,
  ManifestResponse,
  PayloadInfo,
  PayloadList,
  PeerInfo,
  PeerList,
  RegisterPeerResponse,
  UploadResponse,
} from "../proto/tracker.ts";
import { VERSION } from "../version.ts";
import {
  removalHeader,
  signedHave,
  signedRegistration,
  type TestIdentity,
  testIdentity,
} from "../tracker/_test_setup.ts";

// ---- helpers ----

interface Answer {
  status: number;
  headers: Headers;
  /** Parsed JSON when the answer is JSON, otherwise the text. */
  data: unknown;
}

interface CallOptions {
  /** Sent as `application/json`. */
  json?: unknown;
  /** Sent as is, with `type` as its content type (none when undefined). */
  body?: BodyInit;
  type?: string;
  /** More request headers. */
  headers?: Record<string, string>;
}

/** One HTTP request to the tracker; the answer's body is always read to the end. */
async function call(
  tracker: TrackerProcess,
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers["content-type"] = "application/json";
  }
  if (opts.type !== undefined) headers["content-type"] = opts.type;
  const res = await fetch(tracker.url + path, {
    method,
    body,
    headers,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  const json = (res.headers.get("content-type") ?? "").startsWith("application/json");
  return { status: res.status, headers: res.headers, data: json ? JSON.parse(text) : text };
}

/** The raw bytes of a GET answer, which must be 200. */
async function getBytes(
  tracker: TrackerProcess,
  path: string,
): Promise<{ bytes: Uint8Array; headers: Headers }> {
  const res = await fetch(tracker.url + path, { signal: AbortSignal.timeout(10_000) });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, `GET ${path} answered ${res.status}`);
  return { bytes, headers: res.headers };
}

/** `n` deterministic pseudo-random bytes (xorshift32). */
function pseudoRandomBytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The manifest of some bytes, computed here, as a peer would before `PUT /payloads/{id}`. */
async function manifestOf(bytes: Uint8Array): Promise<Manifest> {
  const chunker = new Chunker(CHUNK_SIZE);
  const parts = chunker.push(bytes);
  const last = chunker.finish();
  if (last) parts.push(last);
  const chunks: string[] = [];
  for (const part of parts) chunks.push(await sha256Hex(part));
  return { size: bytes.length, chunkSize: CHUNK_SIZE, chunks };
}

/** Every activity record (optionally of one type), read page by page. */
async function allActivity(tracker: TrackerProcess, type?: string): Promise<ActivityRecord[]> {
  const records: ActivityRecord[] = [];
  let since = 0;
  for (let pages = 0; pages < 1000; pages++) {
    const q = new URLSearchParams({ since: String(since), limit: "50" });
    if (type) q.set("type", type);
    const a = await call(tracker, "GET", `/activity?${q}`);
    assert.equal(a.status, 200);
    const page = ActivityPage.parse(a.data);
    records.push(...page.records);
    if (page.next === null) return records;
    since = page.next;
  }
  throw new Error("GET /activity never reached its last page");
}

/** Identities by the address a test registers them at (`host:port`), and by peerId. */
const identities = new Map<string, TestIdentity>();

/** The identity of a peer registered earlier, by its peerId. */
function identityOf(peerId: string): TestIdentity {
  const id = identities.get(peerId);
  if (!id) throw new Error(`No test identity has peerId '${peerId}'`);
  return id;
}

/**
 * Registers a peer with a signed record: the identity is the one `body.peerId` names,
 * else the one made for its address on first use (so a heartbeat keeps its peerId).
 */
async function register(
  tracker: TrackerProcess,
  body: { host?: string; port: number; peerId?: string; name?: string; version?: string },
): Promise<{ status: number; res: RegisterPeerResponse }> {
  const { peerId, ...fields } = body;
  const at = `${body.host ?? ""}:${body.port}`;
  let id = peerId ? identityOf(peerId) : identities.get(at);
  if (!id) {
    id = await testIdentity();
    identities.set(at, id);
    identities.set(id.peerId, id);
  }
  const a = await call(tracker, "POST", "/peers", { json: await signedRegistration(id, fields) });
  assert.ok(a.status === 200 || a.status === 201, `POST /peers answered ${a.status}`);
  return { status: a.status, res: RegisterPeerResponse.parse(a.data) };
}

async function upload(
  tracker: TrackerProcess,
  body: BodyInit,
  type: string,
  query = "",
): Promise<{ status: number; res: UploadResponse }> {
  const a = await call(tracker, "POST", `/payloads${query}`, { body, type });
  assert.ok(a.status === 200 || a.status === 201, `POST /payloads answered ${a.status}`);
  return { status: a.status, res: UploadResponse.parse(a.data) };
}

async function assertHealthy(tracker: TrackerProcess, after: string): Promise<void> {
  const h = await call(tracker, "GET", "/health");
  assert.equal(h.status, 200, `GET /health after ${after}`);
  assert.deepEqual(h.data, { status: "ok", version: VERSION });
}

const BIG_SIZE = 2.5 * 1024 * 1024 + 1234;

// ---- 1. the whole API contract ----

Deno.test("tracker process serves the whole HTTP API contract over real sockets", async (t) => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });

  let alice = "";
  await t.step(
    "POST /peers registers with 201, then heartbeats the same peerId with 200",
    async () => {
      const first = await register(tracker, { port: 5801, name: "alice", version: VERSION });
      assert.equal(first.status, 201);
      assert.equal(first.res.created, true);
      assert.equal(first.res.peer.host, "127.0.0.1", "host defaults to the caller's address");
      assert.equal(first.res.peer.port, 5801);
      assert.equal(first.res.ttlSeconds, 60);
      alice = first.res.peer.peerId;

      const again = await register(tracker, { port: 5801, name: "alice" });
      assert.equal(again.status, 200);
      assert.equal(again.res.created, false);
      assert.equal(again.res.peer.peerId, alice);
      assert.equal(again.res.peer.registeredAt, first.res.peer.registeredAt);

      const byId = await register(tracker, { port: 5801, peerId: alice });
      assert.equal(byId.status, 200);
      assert.equal(byId.res.peer.peerId, alice);
    },
  );

  let bob = "";
  await t.step(
    "GET /peers lists live peers; GET and DELETE /peers/{id} read and remove one",
    async () => {
      const b = await register(tracker, { host: "127.0.0.2", port: 5801, name: "bob" });
      assert.equal(b.status, 201);
      bob = b.res.peer.peerId;
      assert.notEqual(bob, alice);

      const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
      assert.deepEqual(list.peers.map((p) => p.peerId).sort(), [alice, bob].sort());

      const one = await call(tracker, "GET", `/peers/${bob}`);
      assert.equal(one.status, 200);
      const info = PeerInfo.parse(one.data);
      assert.equal(info.host, "127.0.0.2");
      assert.equal(info.name, "bob");

      const refused = await call(tracker, "DELETE", `/peers/${bob}`);
      assert.equal(refused.status, 403, "only bob may remove bob");
      assert.equal(ErrorBody.parse(refused.data).error.code, "signature_required");
      const del = await call(tracker, "DELETE", `/peers/${bob}`, {
        headers: await removalHeader(identityOf(bob)),
      });
      assert.equal(del.status, 200);
      assert.deepEqual(del.data, { removed: bob });
      const gone = await call(tracker, "GET", `/peers/${bob}`);
      assert.equal(gone.status, 404);
      assert.equal(ErrorBody.parse(gone.data).error.code, "unknown_peer");
      const after = PeerList.parse((await call(tracker, "GET", "/peers")).data);
      assert.deepEqual(after.peers.map((p) => p.peerId), [alice]);
    },
  );

  const text = "Hello from the end-to-end test: the same bytes give the same payloadId.";
  const big = pseudoRandomBytes(BIG_SIZE, 42);
  const jsonText = '{"payload"} is a field, and this string is the payload ✓';
  let textId = "";
  let bigId = "";
  await t.step(
    "POST /payloads takes text/plain, octet-stream and JSON; the same bytes keep their id",
    async () => {
      const up = await upload(tracker, text, "text/plain; charset=utf-8", "?name=hello.txt");
      assert.equal(up.status, 201);
      assert.equal(up.res.created, true);
      assert.equal(up.res.size, new TextEncoder().encode(text).length);
      assert.equal(up.res.chunks, 1);
      assert.equal(up.res.chunkSize, CHUNK_SIZE);
      textId = up.res.payloadId;

      const bin = await upload(tracker, big, "application/octet-stream", "?name=big.bin");
      assert.equal(bin.status, 201);
      assert.equal(bin.res.size, BIG_SIZE);
      assert.equal(bin.res.chunks, 3, "2.5 MiB make three 1 MiB chunks");
      bigId = bin.res.payloadId;
      assert.equal(bigId, await payloadIdOf(await manifestOf(big)));

      const js = await call(tracker, "POST", "/payloads", { json: { payload: jsonText } });
      assert.equal(js.status, 201);
      const jsUp = UploadResponse.parse(js.data);
      assert.equal(
        jsUp.payloadId,
        await payloadIdOf(await manifestOf(new TextEncoder().encode(jsonText))),
      );

      const sameText = await call(tracker, "POST", "/payloads", { json: { payload: text } });
      assert.equal(sameText.status, 200);
      assert.deepEqual(
        { ...UploadResponse.parse(sameText.data) },
        { ...up.res, created: false },
        "JSON {payload} with the same text is the same payload",
      );

      const binAgain = await upload(tracker, big, "application/octet-stream");
      assert.equal(binAgain.status, 200);
      assert.equal(binAgain.res.payloadId, bigId);
      assert.equal(binAgain.res.created, false);

      const all: PayloadInfo[] = [];
      let cursor: string | null = null;
      do {
        const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
        const page = PayloadList.parse((await call(tracker, "GET", `/payloads?limit=2${q}`)).data);
        all.push(...page.payloads);
        cursor = page.cursor;
      } while (cursor !== null);
      assert.deepEqual(all.map((p) => p.payloadId).sort(), [textId, bigId, jsUp.payloadId].sort());
      const bigInfo = all.find((p) => p.payloadId === bigId)!;
      assert.equal(bigInfo.name, "big.bin");
      assert.equal(bigInfo.stored, true);
      assert.equal(bigInfo.chunks, 3);
    },
  );

  await t.step(
    "GET /payloads/{id} gives a manifest that hashes to the id; every chunk verifies",
    async () => {
      const a = await call(tracker, "GET", `/payloads/${bigId}`);
      assert.equal(a.status, 200);
      const m = ManifestResponse.parse(a.data);
      assert.equal(m.payloadId, bigId);
      assert.equal(m.stored, true);
      assert.equal(m.name, "big.bin");
      const manifest: Manifest = { size: m.size, chunkSize: m.chunkSize, chunks: m.chunks };
      assert.equal(await payloadIdOf(manifest), bigId);

      const joined = new Uint8Array(m.size);
      for (let i = 0; i < m.chunks.length; i++) {
        const { bytes, headers } = await getBytes(tracker, `/payloads/${bigId}/chunks/${i}`);
        await verifyChunk(manifest, i, bytes);
        assert.equal(headers.get("x-chunk-sha256"), m.chunks[i]);
        joined.set(bytes, i * m.chunkSize);
      }
      assert.ok(equalBytes(joined, big), "the chunks put together are the upload");

      const { bytes, headers } = await getBytes(tracker, `/payloads/${bigId}/content`);
      assert.equal(headers.get("content-length"), String(BIG_SIZE));
      assert.ok(equalBytes(bytes, big), "GET /payloads/{id}/content is the upload");
      const small = await getBytes(tracker, `/payloads/${textId}/content`);
      assert.equal(new TextDecoder().decode(small.bytes), text);
    },
  );

  let publishedId = "";
  await t.step(
    "PUT /payloads/{id} publishes a locally computed manifest without bytes",
    async () => {
      const other = pseudoRandomBytes(CHUNK_SIZE + 777, 7);
      const manifest = await manifestOf(other);
      publishedId = await payloadIdOf(manifest);
      const put = await call(tracker, "PUT", `/payloads/${publishedId}`, {
        json: { ...manifest, name: "other.bin" },
      });
      assert.equal(put.status, 201);
      const info = PayloadInfo.parse(put.data);
      assert.equal(info.stored, false);
      assert.equal(info.chunks, 2);
      assert.equal(info.size, other.length);

      const again = await call(tracker, "PUT", `/payloads/${publishedId}`, { json: manifest });
      assert.equal(again.status, 200);

      const m = ManifestResponse.parse(
        (await call(tracker, "GET", `/payloads/${publishedId}`)).data,
      );
      assert.deepEqual(m.chunks, manifest.chunks);
      assert.equal(m.stored, false);
      for (
        const path of [`/payloads/${publishedId}/content`, `/payloads/${publishedId}/chunks/0`]
      ) {
        const a = await call(tracker, "GET", path);
        assert.equal(a.status, 404, path);
        assert.equal(ErrorBody.parse(a.data).error.code, "not_stored");
      }
    },
  );

  await t.step(
    "POST /payloads/{id}/have announces chunk positions; GET /payloads/{id}/peers lists them",
    async () => {
      const have = await call(tracker, "POST", `/payloads/${bigId}/have`, {
        json: await signedHave(identityOf(alice), bigId, { chunks: [0, 2] }),
      });
      assert.equal(have.status, 200);
      assert.deepEqual(have.data, { payloadId: bigId, peerId: alice, count: 2 });

      const holders = HolderList.parse(
        (await call(tracker, "GET", `/payloads/${bigId}/peers`)).data,
      );
      assert.equal(holders.chunks, 3);
      assert.equal(holders.tracker.holds, true);
      assert.equal(holders.peers.length, 1);
      assert.equal(holders.peers[0].peerId, alice);
      assert.equal(holders.peers[0].count, 2);
      assert.equal(holders.peers[0].ranges, "0,2");
      assert.equal(holders.peers[0].have, toBase64(Uint8Array.of(0b1010_0000)));

      // The bitfield form, on the payload the tracker holds no bytes of.
      const bits = await call(tracker, "POST", `/payloads/${publishedId}/have`, {
        json: await signedHave(identityOf(alice), publishedId, {
          have: toBase64(Uint8Array.of(0b1100_0000)),
        }),
      });
      assert.equal(bits.status, 200);
      const pub = HolderList.parse(
        (await call(tracker, "GET", `/payloads/${publishedId}/peers`)).data,
      );
      assert.equal(pub.tracker.holds, false);
      assert.equal(pub.peers[0].ranges, "0-1");
    },
  );

  await t.step("GET /activity pages with since and limit, and filters by type", async () => {
    const whole = ActivityPage.parse((await call(tracker, "GET", "/activity?limit=1000")).data);
    assert.equal(whole.next, null);
    const ids = whole.records.map((r) => r.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), "records come in id order");
    assert.equal(new Set(ids).size, ids.length, "ids are unique");

    const first = ActivityPage.parse((await call(tracker, "GET", "/activity?limit=3")).data);
    assert.equal(first.records.length, 3);
    assert.equal(first.next, first.records[2].id);
    const paged = await allActivity(tracker);
    // Reading the activity adds no records, but other GETs since `whole` (none here) would.
    assert.deepEqual(paged.slice(0, whole.records.length), whole.records);

    const types = new Set(whole.records.map((r) => r.type));
    for (const type of ["tracker.start", "peer.register", "peer.heartbeat", "peer.remove"]) {
      assert.ok(types.has(type), `an activity record of type ${type}`);
    }
    const peers = await allActivity(tracker, "peer");
    assert.ok(peers.length >= 5);
    assert.ok(peers.every((r) => r.type.startsWith("peer.")), "type=peer is a dotted prefix");
    const uploads = await allActivity(tracker, "payload.upload");
    assert.equal(uploads.length, 5, "3 new uploads and 2 repeats");
    assert.deepEqual(
      uploads.filter((r) => r.created === true).map((r) => r.payloadId).sort(),
      [...new Set(uploads.map((r) => r.payloadId as string))].sort(),
    );
    const publishes = await allActivity(tracker, "payload.publish");
    assert.ok(publishes.some((r) => r.payloadId === publishedId));
    const since = ActivityPage.parse(
      (await call(tracker, "GET", `/activity?since=${uploads[0].id}&type=payload.upload`)).data,
    );
    assert.deepEqual(since.records.map((r) => r.id), uploads.slice(1).map((r) => r.id));
  });

  await t.step(
    "GET /health answers ok and GET /metrics the Prometheus counters and gauges",
    async () => {
      await assertHealthy(tracker, "the API calls");
      const m = await call(tracker, "GET", "/metrics");
      assert.equal(m.status, 200);
      assert.match(m.headers.get("content-type") ?? "", /^text\/plain/);
      const text = m.data as string;
      assert.ok(text.includes("p2p_tracker_http_requests_total{"), text);
      assert.match(
        text,
        /^p2p_tracker_http_requests_total\{method="POST",route="\/peers",status="201"\} 2$/m,
      );
      assert.match(text, /^p2p_tracker_live_peers 1$/m);
      assert.match(text, /^p2p_tracker_payloads 4$/m);
    },
  );

  const exit = await tracker.stop("SIGTERM");
  assert.equal(exit.status.code, 0, exit.stderr);
  assert.equal(exit.stderr, "", "nothing went wrong on the way");
});

// ---- 2. concurrent registrations ----

Deno.test("tracker process keeps one peerId per (host, port) under 50 concurrent registrations", async (t) => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });

  await t.step(
    "50 concurrent signed POST /peers of one peer keep one entry; an overtaken one is stale",
    async () => {
      const id = await testIdentity();
      const bodies = await Promise.all(
        Array.from({ length: 50 }, () => signedRegistration(id, { port: 6000 })),
      );
      const answers = await Promise.all(
        bodies.map((json) => call(tracker, "POST", "/peers", { json })),
      );
      const taken = answers.filter((a) => a.status !== 409);
      for (const a of answers.filter((a) => a.status === 409)) {
        assert.equal(ErrorBody.parse(a.data).error.code, "stale_record");
      }
      for (const a of taken) assert.ok(a.status === 200 || a.status === 201, `${a.status}`);
      const res = taken.map((a) => RegisterPeerResponse.parse(a.data));
      assert.deepEqual(new Set(res.map((r) => r.peer.peerId)), new Set([id.peerId]));
      assert.equal(res.filter((r) => r.created).length, 1, "exactly one answer created the peer");
      assert.equal(answers.filter((a) => a.status === 201).length, 1);

      const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
      const entries = list.peers.filter((p) => p.host === "127.0.0.1" && p.port === 6000);
      assert.equal(entries.length, 1);
      assert.equal(entries[0].peerId, res[0].peer.peerId);
    },
  );

  await t.step("50 concurrent POST /peers of 50 ports get 50 distinct entries", async () => {
    const ports = Array.from({ length: 50 }, (_, i) => 7000 + i);
    const answers = await Promise.all(
      ports.map(async (port) =>
        call(tracker, "POST", "/peers", {
          json: await signedRegistration(await testIdentity(), { port }),
        })
      ),
    );
    for (const a of answers) assert.equal(a.status, 201);
    const ids = answers.map((a) => RegisterPeerResponse.parse(a.data).peer.peerId);
    assert.equal(new Set(ids).size, 50);

    const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
    const mine = list.peers.filter((p) => p.port >= 7000 && p.port < 7050);
    assert.equal(mine.length, 50);
    assert.deepEqual(mine.map((p) => p.port).sort((a, b) => a - b), ports);
    assert.deepEqual(mine.map((p) => p.peerId).sort(), [...ids].sort());
    assert.equal(list.peers.length, 51);
  });

  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

// ---- 3. expiry ----

Deno.test("tracker process with --peer-ttl 1 drops a silent peer and records peer.expire", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--peer-ttl", "1"] });

  const { res } = await register(tracker, { port: 5801, name: "silent" });
  const peerId = res.peer.peerId;
  assert.equal(res.ttlSeconds, 1);
  assert.equal(Date.parse(res.peer.expiresAt) - Date.parse(res.peer.lastSeen), 1000);
  const listed = PeerList.parse((await call(tracker, "GET", "/peers")).data);
  assert.ok(listed.peers.some((p) => p.peerId === peerId));

  // Expiry is time-based and happens inside another process, so there is no event to
  // wait on: re-poll every 200 ms, for 6 s at most.
  const deadline = Date.now() + 6_000;
  let gone = false;
  let expired: ActivityRecord | undefined;
  while (Date.now() < deadline && !(gone && expired)) {
    const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
    gone = !list.peers.some((p) => p.peerId === peerId);
    expired = (await allActivity(tracker, "peer.expire")).find((r) => r.peerId === peerId);
    if (!(gone && expired)) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.ok(gone, "the peer left GET /peers within 6 s");
  assert.ok(expired, "a peer.expire record names the peer");
  assert.equal(expired.host, "127.0.0.1");
  assert.equal(expired.port, 5801);
  const one = await call(tracker, "GET", `/peers/${peerId}`);
  assert.equal(one.status, 404);

  // A heartbeat after expiry registers the address anew.
  const back = await register(tracker, { port: 5801, peerId });
  assert.equal(back.status, 201);
  assert.equal(back.res.created, true);
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

// ---- 4. restart ----

/** What `populate()` stored in the first run. */
interface Populated {
  peerId: string;
  textId: string;
  bigId: string;
}

/** Registers a peer and uploads a text and a 2.5 MiB payload, each answered 201. */
async function populate(
  tracker: TrackerProcess,
  big: Uint8Array<ArrayBuffer>,
): Promise<Populated> {
  const peer = await register(tracker, { port: 5801, name: "durable" });
  assert.equal(peer.status, 201);
  const text = await upload(tracker, "durable text", "text/plain");
  assert.equal(text.status, 201);
  const bin = await upload(tracker, big, "application/octet-stream", "?name=durable.bin");
  assert.equal(bin.status, 201);
  return { peerId: peer.res.peer.peerId, textId: text.res.payloadId, bigId: bin.res.payloadId };
}

/** Checks that what `populate()` stored is all there after a restart. */
async function assertSurvived(
  tracker: TrackerProcess,
  before: Populated,
  big: Uint8Array,
): Promise<void> {
  const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
  assert.deepEqual(
    list.peers.map((p) => p.peerId),
    [before.peerId],
    "the live peer is still there",
  );

  const { bytes } = await getBytes(tracker, `/payloads/${before.bigId}/content`);
  assert.ok(equalBytes(bytes, big), "the big payload is still downloadable and identical");
  const m = ManifestResponse.parse((await call(tracker, "GET", `/payloads/${before.bigId}`)).data);
  assert.equal(await payloadIdOf(m), before.bigId);
  const text = await getBytes(tracker, `/payloads/${before.textId}/content`);
  assert.equal(new TextDecoder().decode(text.bytes), "durable text");

  const registered = await allActivity(tracker, "peer.register");
  assert.ok(registered.some((r) => r.peerId === before.peerId), "the registration record");
  const uploads = await allActivity(tracker, "payload.upload");
  assert.deepEqual(
    uploads.map((r) => r.payloadId).sort(),
    [before.textId, before.bigId].sort(),
    "the upload records",
  );
  // The address keeps its peerId, and new records get ids after the old ones.
  const heartbeat = await register(tracker, { port: 5801 });
  assert.equal(heartbeat.status, 200);
  assert.equal(heartbeat.res.peer.peerId, before.peerId);
  const all = await allActivity(tracker);
  const ids = all.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, "no activity id is used twice");
  const beat = all.find((r) => r.type === "peer.heartbeat")!;
  assert.ok(beat.id > Math.max(...uploads.map((r) => r.id)));
}

Deno.test("tracker process restarted after SIGTERM keeps peers, payloads and activity", async () => {
  await using dir = await tempDir();
  const big = pseudoRandomBytes(BIG_SIZE, 99);
  const args = ["--peer-ttl", "600"];
  let before: Populated;
  {
    await using first = await spawnTracker({ dir: dir.path, args });
    before = await populate(first, big);
    const exit = await first.stop("SIGTERM");
    assert.equal(exit.status.code, 0, exit.stderr);
    assert.equal(exit.status.signal, null);
    assert.match(exit.stdout, /^p2p tracker: stopping$/m);
    assert.match(exit.stdout, /^p2p tracker: stopped$/m);
    assert.equal(exit.stderr, "");
  }
  // The JSON-lines log has the records too.
  const lines = (await Deno.readTextFile(`${dir.path}/activity.jsonl`)).trim().split("\n");
  const logged = lines.map((l) => JSON.parse(l) as ActivityRecord);
  assert.ok(logged.some((r) => r.type === "peer.register" && r.peerId === before.peerId));
  assert.equal(logged.at(-1)?.type, "tracker.stop");

  await using second = await spawnTracker({ dir: dir.path, args });
  await assertSurvived(second, before, big);
  const stops = await allActivity(second, "tracker.stop");
  assert.equal(stops.length, 1, "the graceful stop was recorded");
  const starts = await allActivity(second, "tracker.start");
  assert.equal(starts.length, 2, "one tracker.start record per run");
  const exit = await second.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

Deno.test("tracker process restarted after SIGKILL keeps peers, payloads and activity", async () => {
  await using dir = await tempDir();
  const big = pseudoRandomBytes(BIG_SIZE, 123);
  const args = ["--peer-ttl", "600"];
  let before: Populated;
  {
    await using first = await spawnTracker({ dir: dir.path, args });
    before = await populate(first, big);
    // Killed right after the answers: whatever was answered 2xx is committed.
    const exit = await first.kill();
    assert.equal(exit.status.signal, "SIGKILL");
    assert.doesNotMatch(exit.stdout, /stopped/);
  }
  await using second = await spawnTracker({ dir: dir.path, args });
  await assertSurvived(second, before, big);
  const exit = await second.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

// ---- 5. bad input ----

interface BadCase {
  what: string;
  method: string;
  path: string;
  opts?: CallOptions;
  status: number;
  code: string;
  /** Something the message must say. */
  says?: RegExp;
}

Deno.test("tracker process answers bad input with a 4xx JSON error and keeps serving", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--max-upload", "1MiB"] });
  const alice = (await register(tracker, { port: 5801 })).res.peer.peerId;
  const stored = (await upload(tracker, pseudoRandomBytes(1000, 5), "application/octet-stream"))
    .res.payloadId;
  const overLimit = pseudoRandomBytes(1536 * 1024, 11);
  const unknownPeer = "a".repeat(40);
  const unknownPayload = "0".repeat(64);

  const cases: BadCase[] = [
    {
      what: "malformed JSON",
      method: "POST",
      path: "/peers",
      opts: { body: "{not json", type: "application/json" },
      status: 400,
      code: "bad_json",
    },
    {
      what: "a port of the wrong type",
      method: "POST",
      path: "/peers",
      opts: { json: { port: "5801" } },
      status: 400,
      code: "invalid_body",
      says: /'port'/,
    },
    {
      what: "a port out of range",
      method: "POST",
      path: "/peers",
      opts: { json: { port: 70000 } },
      status: 400,
      code: "invalid_body",
      says: /'port'/,
    },
    {
      what: "a JSON array instead of an object",
      method: "POST",
      path: "/peers",
      opts: { json: [5801] },
      status: 400,
      code: "invalid_body",
    },
    {
      what: "a missing port",
      method: "POST",
      path: "/peers",
      opts: { json: { name: "no port" } },
      status: 400,
      code: "invalid_body",
      says: /'port'/,
    },
    {
      what: "an unknown route",
      method: "GET",
      path: "/nowhere",
      status: 404,
      code: "not_found",
      says: /GET \/nowhere/,
    },
    {
      what: "an unknown method on a known path",
      method: "PATCH",
      path: "/peers",
      status: 404,
      code: "not_found",
    },
    {
      what: "an unknown peer id",
      method: "GET",
      path: `/peers/${unknownPeer}`,
      status: 404,
      code: "unknown_peer",
      says: new RegExp(unknownPeer),
    },
    {
      what: "removing an unknown peer",
      method: "DELETE",
      path: `/peers/${unknownPeer}`,
      status: 404,
      code: "unknown_peer",
    },
    {
      what: "a malformed peer id",
      method: "GET",
      path: "/peers/not-a-peer",
      status: 400,
      code: "invalid_id",
      says: /'not-a-peer'/,
    },
    {
      what: "a malformed payload id",
      method: "GET",
      path: "/payloads/xyz",
      status: 400,
      code: "invalid_id",
      says: /'xyz'/,
    },
    {
      what: "an upper-case payload id",
      method: "GET",
      path: `/payloads/${"A".repeat(64)}`,
      status: 400,
      code: "invalid_id",
    },
    {
      what: "an unknown payload id",
      method: "GET",
      path: `/payloads/${unknownPayload}/content`,
      status: 404,
      code: "unknown_payload",
    },
    {
      what: "a chunk index out of range",
      method: "GET",
      path: `/payloads/${stored}/chunks/1`,
      status: 400,
      code: "invalid_index",
    },
    {
      what: "a chunk index that is not a number",
      method: "GET",
      path: `/payloads/${stored}/chunks/-1`,
      status: 400,
      code: "invalid_index",
    },
    {
      what: "an upload with a declared length over --max-upload",
      method: "POST",
      path: "/payloads",
      opts: { body: overLimit, type: "application/octet-stream" },
      status: 413,
      code: "payload_too_large",
      says: /p2p put/,
    },
    {
      what: "a streamed upload (no length) over --max-upload",
      method: "POST",
      path: "/payloads",
      opts: { body: new Blob([overLimit]).stream(), type: "application/octet-stream" },
      status: 413,
      code: "payload_too_large",
      says: /p2p put/,
    },
    {
      what: "a JSON upload over --max-upload",
      method: "POST",
      path: "/payloads",
      opts: { json: { payload: "x".repeat(1536 * 1024) } },
      status: 413,
      code: "payload_too_large",
      says: /p2p put/,
    },
    {
      what: "an unsupported content type",
      method: "POST",
      path: "/payloads",
      opts: { body: "png?", type: "image/png" },
      status: 415,
      code: "unsupported_media_type",
      says: /'image\/png'/,
    },
    {
      what: "an upload without a content type",
      method: "POST",
      path: "/payloads",
      opts: { body: Uint8Array.of(1, 2, 3) },
      status: 415,
      code: "unsupported_media_type",
      says: /'none'/,
    },
    {
      what: "an empty text upload",
      method: "POST",
      path: "/payloads",
      opts: { body: "", type: "text/plain" },
      status: 400,
      code: "empty_payload",
    },
    {
      what: "an empty JSON payload",
      method: "POST",
      path: "/payloads",
      opts: { json: { payload: "" } },
      status: 400,
      code: "empty_payload",
    },
    {
      what: "a JSON upload without its payload field",
      method: "POST",
      path: "/payloads",
      opts: { json: { data: "x" } },
      status: 400,
      code: "invalid_body",
      says: /'payload'/,
    },
    {
      what: "a manifest that does not hash to the id",
      method: "PUT",
      path: `/payloads/${unknownPayload}`,
      opts: { json: { size: 3, chunkSize: CHUNK_SIZE, chunks: ["1".repeat(64)] } },
      status: 400,
      code: "manifest_mismatch",
    },
    {
      what: "a manifest with another chunk size",
      method: "PUT",
      path: `/payloads/${unknownPayload}`,
      opts: { json: { size: 3, chunkSize: 1024, chunks: ["1".repeat(64)] } },
      status: 400,
      code: "invalid_body",
      says: /'1024'/,
    },
    {
      what: "an announcement by an unknown peer",
      method: "POST",
      path: `/payloads/${stored}/have`,
      opts: { json: await signedHave(await testIdentity(), stored, { chunks: [0] }) },
      status: 404,
      code: "unknown_peer",
    },
    {
      what: "an announcement with both forms",
      method: "POST",
      path: `/payloads/${stored}/have`,
      opts: { json: await signedHave(identityOf(alice), stored, { chunks: [0], have: "gA==" }) },
      status: 400,
      code: "invalid_body",
    },
    {
      what: "an announcement of a position past the last chunk",
      method: "POST",
      path: `/payloads/${stored}/have`,
      opts: { json: await signedHave(identityOf(alice), stored, { chunks: [1] }) },
      status: 400,
      code: "invalid_body",
      says: /'1'/,
    },
    {
      what: "an announcement with a bitfield that is not base64",
      method: "POST",
      path: `/payloads/${stored}/have`,
      opts: { json: await signedHave(identityOf(alice), stored, { have: "***" }) },
      status: 400,
      code: "invalid_body",
    },
    {
      what: "an activity limit of 0",
      method: "GET",
      path: "/activity?limit=0",
      status: 400,
      code: "invalid_query",
      says: /'limit'/,
    },
    {
      what: "a payload cursor that is not one",
      method: "GET",
      path: "/payloads?cursor=garbage",
      status: 400,
      code: "invalid_query",
    },
  ];

  for (const c of cases) {
    const a = await call(tracker, c.method, c.path, c.opts);
    assert.equal(a.status, c.status, `${c.what}: status (${JSON.stringify(a.data)})`);
    assert.match(a.headers.get("content-type") ?? "", /^application\/json/, c.what);
    const body = ErrorBody.safeParse(a.data);
    assert.ok(
      body.success,
      `${c.what}: {error:{code,message}} body, got ${JSON.stringify(a.data)}`,
    );
    assert.equal(body.data.error.code, c.code, c.what);
    assert.ok(body.data.error.message.length > 0, c.what);
    if (c.says) assert.match(body.data.error.message, c.says, c.what);
    await assertHealthy(tracker, c.what);
  }

  // Nothing bad input did reached the state.
  const list = PeerList.parse((await call(tracker, "GET", "/peers")).data);
  assert.deepEqual(list.peers.map((p) => p.peerId), [alice]);
  const payloads = PayloadList.parse((await call(tracker, "GET", "/payloads")).data);
  assert.deepEqual(payloads.payloads.map((p) => p.payloadId), [stored]);

  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
  assert.equal(exit.stderr, "", "bad input is not a failure of the tracker");
});

/** Writes `bytes` on a fresh TCP connection to the tracker, reads its answer to the end. */
async function rawExchange(tracker: TrackerProcess, bytes: Uint8Array, read: boolean) {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: tracker.port });
  await conn.write(bytes);
  if (!read) return "";
  let answer = "";
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return answer;
    answer += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

Deno.test("tracker process keeps serving after raw TCP garbage and a half-sent request", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  const encode = (s: string) => new TextEncoder().encode(s);

  await rawExchange(tracker, Uint8Array.of(0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a), false);
  await assertHealthy(tracker, "garbage bytes, then a hang-up");

  const answer = await rawExchange(tracker, encode("\x00\xffNOT HTTP AT ALL\r\n\r\n"), true);
  assert.match(answer, /^HTTP\/1\.1 400 /, "garbage gets 400 Bad Request, then the close");
  await assertHealthy(tracker, "garbage bytes with the answer read");

  await rawExchange(tracker, encode("GET /peers HTTP/1.1\r\nHost: 127.0"), false);
  await assertHealthy(tracker, "half a request head");

  await rawExchange(
    tracker,
    encode(
      "POST /peers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        'Content-Length: 100\r\n\r\n{"po',
    ),
    false,
  );
  await assertHealthy(tracker, "half a request body");

  const ok = await register(tracker, { port: 5801 });
  assert.equal(ok.status, 201, "registration still works");
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

Deno.test("tracker process does not report a client that hangs up mid-body as a storage error", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  await rawExchange(
    tracker,
    new TextEncoder().encode(
      "POST /payloads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" +
        "Content-Length: 1000\r\n\r\nonly part of the body",
    ),
    false,
  );
  await assertHealthy(tracker, "half an upload");
  // A graceful stop waits for the request in flight and writes every record to the log.
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0);
  const records = (await Deno.readTextFile(tracker.log)).trim().split("\n")
    .map((line) => ActivityRecord.parse(JSON.parse(line)));
  assert.equal(records.at(-1)?.type, "tracker.stop");

  // A body that breaks off is the client's doing (400 incomplete_body, see readBody() in
  // lib/http_api.ts), never a storage failure with a stack trace on stderr.
  assert.deepEqual(
    records.filter((r) => r.type === "storage.error"),
    [],
    "a client that hangs up mid-body is recorded as the client's doing, not as storage.error",
  );
  assert.doesNotMatch(exit.stderr, /^\s+at /m, "no stack trace on the tracker's stderr");
});

Deno.test("tracker process with --max-upload 1MiB takes a payload of exactly 1 MiB in every form", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--max-upload", "1MiB"] });
  const max = 1024 * 1024;

  const text = await call(tracker, "POST", "/payloads", {
    body: "t".repeat(max),
    type: "text/plain",
  });
  assert.equal(text.status, 201, "text/plain of exactly --max-upload");
  const bin = await call(tracker, "POST", "/payloads", {
    body: pseudoRandomBytes(max, 3),
    type: "application/octet-stream",
  });
  assert.equal(bin.status, 201, "octet-stream of exactly --max-upload");
  const over = await call(tracker, "POST", "/payloads", {
    body: "t".repeat(max + 1),
    type: "text/plain",
  });
  assert.equal(over.status, 413, "one byte more is refused");

  // A JSON upload is limited by its decoded payload (tracker/upload.ts): JSON's own
  // bytes (`{"payload":""}`, escapes) do not count against --max-upload.
  const json = await call(tracker, "POST", "/payloads", { json: { payload: "j".repeat(max) } });
  assert.equal(
    json.status,
    201,
    `a JSON {payload} of exactly --max-upload bytes is taken like text/plain; got ${
      JSON.stringify(json.data)
    }`,
  );
  const escaped = await call(tracker, "POST", "/payloads", {
    json: { payload: "\n".repeat(600 * 1024) },
  });
  assert.equal(
    escaped.status,
    201,
    `a 600 KiB payload whose JSON escapes double its length is under 1 MiB; got ${
      JSON.stringify(escaped.data)
    }`,
  );
});

Deno.test("tracker process refuses an oversized POST /peers body with 413 that does not blame --max-upload", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  const a = await call(tracker, "POST", "/peers", {
    json: { port: 5801, name: "z".repeat(70_000) },
  });
  assert.equal(a.status, 413);
  const { error } = ErrorBody.parse(a.data);
  assert.equal(error.code, "payload_too_large");
  await assertHealthy(tracker, "an oversized registration");
  // The 64 KiB limit of small JSON bodies is the endpoint's (tracker/errors.ts
  // bodyTooLarge()), not --max-upload: the answer must not send the caller there.
  assert.doesNotMatch(
    error.message,
    /--max-upload|p2p put/,
    "the 64 KiB limit of small JSON bodies is not --max-upload",
  );
});
