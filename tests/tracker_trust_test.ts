/**
 * The tracker against strangers, as real processes on 127.0.0.1: only holders of the
 * network key are served, a request cannot be played again, a peer's record and
 * announcements change only with its own signature, a flood is rate limited, slow and
 * surplus connections are cut, refused or broken uploads leave no KV keys, and the
 * tracker serves HTTPS with a certificate.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawnTracker, tempDir, type TrackerProcess } from "./_tracker_process.ts";
import { TrackerClient, TrackerError } from "../peer/tracker_client.ts";
import { formatNetworkKey, newNetworkKey } from "../proto/network_key.ts";
import { ActivityPage } from "../proto/activity.ts";
import { ErrorBody, PeerList, RegisterPeerResponse } from "../proto/tracker.ts";
import { EMPTY_SHA256, signRequest, verifyRegistration } from "../proto/tracker_auth.ts";
import {
  removalHeader,
  signedHave,
  signedRegistration,
  type TestIdentity,
  testIdentity,
} from "../tracker/_test_setup.ts";
import { testCert } from "../lib/http_relay/_tls_fixture.ts";

/** Writes a fresh network key to `dir/name` (mode 600) and returns it and its path. */
async function keyFile(dir: string, name = "network.key") {
  const key = newNetworkKey();
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, formatNetworkKey(key) + "\n", { mode: 0o600 });
  return { key, path };
}

/** A tracker client of `tracker` with a fresh identity (and the key, when given). */
async function member(tracker: TrackerProcess, networkKey?: Uint8Array) {
  const identity = await testIdentity();
  return { identity, client: new TrackerClient(tracker.url, { identity, networkKey }) };
}

/** The error a tracker call failed with: its status and code. */
async function refusal(call: Promise<unknown>): Promise<{ status: number; code: string }> {
  const err = await call.then(() => undefined, (e) => e);
  assert.ok(err instanceof TrackerError, `expected a refusal, got ${err}`);
  return { status: err.httpStatus, code: err.code };
}

/** One request with a JSON (or raw) body and extra headers; the answer read whole. */
async function send(
  url: string,
  method: string,
  opts: { json?: unknown; body?: Uint8Array; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; data: unknown }> {
  const body = opts.json !== undefined
    ? new TextEncoder().encode(JSON.stringify(opts.json))
    : opts.body;
  const res = await fetch(url, {
    method,
    headers: {
      ...(opts.json !== undefined ? { "content-type": "application/json" } : {}),
      ...opts.headers,
    },
    body: body as Uint8Array<ArrayBuffer> | undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: the text is the answer.
  }
  return { status: res.status, headers: res.headers, data };
}

function codeOf(data: unknown): string {
  return ErrorBody.parse(data).error.code;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Keys under each of `prefixes` in a stopped tracker's KV file. */
async function countKeys(db: string, prefixes: string[]): Promise<Record<string, number>> {
  using kv = await Deno.openKv(db);
  const out: Record<string, number> = {};
  for (const p of prefixes) {
    out[p] = 0;
    for await (const _ of kv.list({ prefix: [p] })) out[p]++;
  }
  return out;
}

Deno.test("a keyed tracker process serves only holders of its key: no key or another key is 401", async () => {
  await using dir = await tempDir();
  const { key, path } = await keyFile(dir.path);
  await using tracker = await spawnTracker({
    dir: dir.path,
    args: ["--network-key-file", path],
  });

  // No proof at all: every route but /health is refused.
  const stranger = await testIdentity();
  const reg = await signedRegistration(stranger, { port: 5801 });
  for (
    const [method, path, opts] of [
      ["POST", "/peers", { json: reg }],
      ["GET", "/peers", {}],
      ["POST", "/payloads", {
        body: new Uint8Array(10),
        headers: { "content-type": "text/plain" },
      }],
      ["GET", "/metrics", {}],
      ["GET", "/activity", {}],
    ] as const
  ) {
    const a = await send(tracker.url + path, method, opts);
    assert.equal(a.status, 401, `${method} ${path} without the key`);
    assert.equal(codeOf(a.data), "membership_required");
  }
  const health = await send(`${tracker.url}/health`, "GET");
  assert.equal(health.status, 200, "/health stays open and says only ok and the version");

  // Another network's key: the proof does not verify.
  const outsider = await member(tracker, newNetworkKey());
  assert.deepEqual(await refusal(outsider.client.register({ port: 5802 })), {
    status: 401,
    code: "bad_proof",
  });
  assert.deepEqual(await refusal(outsider.client.upload(new Uint8Array(100))), {
    status: 401,
    code: "bad_proof",
  });
  assert.deepEqual(await refusal(outsider.client.peers()), { status: 401, code: "bad_proof" });

  // A member registers, heartbeats, uploads and announces.
  const m = await member(tracker, key);
  const first = await m.client.register({ port: 5803, name: "member" });
  assert.equal(first.created, true);
  assert.equal((await m.client.register({ port: 5803, name: "member" })).created, false);
  const up = await m.client.upload(new TextEncoder().encode("members only"), "m.txt");
  assert.equal(up.created, true);
  assert.equal(
    (await m.client.announce(up.payloadId, m.identity.peerId, Uint8Array.of(0x80))).count,
    1,
  );
  // A file is hashed, then streamed: the proof covers a body never held whole.
  const big = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => (i * 31) & 0xff);
  await Deno.writeFile(`${dir.path}/big.bin`, big);
  const file = await m.client.uploadFile(`${dir.path}/big.bin`, "big.bin");
  assert.equal(file.size, big.length);
  assert.equal(file.chunks, 4);
  const peers = await m.client.peers();
  assert.deepEqual(peers.map((p) => p.peerId), [m.identity.peerId]);
  assert.ok(await verifyRegistration(peers[0].record!), "the listing carries the signed record");

  // Every refusal is an activity record.
  const q = "/activity?type=error&limit=100";
  const activity = await send(tracker.url + q, "GET", {
    headers: { authorization: await signRequest(key, "GET", q, EMPTY_SHA256) },
  });
  const codes = ActivityPage.parse(activity.data).records.map((r) => r.code);
  assert.ok(codes.includes("membership_required"), JSON.stringify(codes));
  assert.ok(codes.includes("bad_proof"), JSON.stringify(codes));
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
  assert.match(exit.stdout, /network: protected/);
});

Deno.test("a keyed tracker process refuses a replayed request, a stale one and a body that is not the one proven", async () => {
  await using dir = await tempDir();
  const { key, path } = await keyFile(dir.path);
  await using tracker = await spawnTracker({
    dir: dir.path,
    args: ["--network-key-file", path],
  });
  const id = await testIdentity();
  const body = new TextEncoder().encode(
    JSON.stringify(await signedRegistration(id, { port: 5801 })),
  );
  const headers = {
    "content-type": "application/json",
    authorization: await signRequest(key, "POST", "/peers", sha256(body)),
  };
  const first = await send(`${tracker.url}/peers`, "POST", { body, headers });
  assert.equal(first.status, 201);
  const again = await send(`${tracker.url}/peers`, "POST", { body, headers });
  assert.equal(again.status, 401, "the same headers and body, played again");
  assert.equal(codeOf(again.data), "replayed_request");

  const old = await send(`${tracker.url}/peers`, "GET", {
    headers: {
      authorization: await signRequest(key, "GET", "/peers", EMPTY_SHA256, Date.now() - 120_000),
    },
  });
  assert.equal(old.status, 401);
  assert.equal(codeOf(old.data), "stale_request");

  // A proof for one body, sent with another: refused, and the upload leaves nothing.
  const proven = new Uint8Array(300_000).fill(1);
  const sent = new Uint8Array(300_000).fill(2);
  const swapped = await send(`${tracker.url}/payloads`, "POST", {
    body: sent,
    headers: {
      "content-type": "application/octet-stream",
      authorization: await signRequest(key, "POST", "/payloads", sha256(proven)),
    },
  });
  assert.equal(swapped.status, 401);
  assert.equal(codeOf(swapped.data), "body_mismatch");
  // The path and query are proven too.
  const moved = await send(`${tracker.url}/peers?x=1`, "GET", {
    headers: { authorization: await signRequest(key, "GET", "/peers", EMPTY_SHA256) },
  });
  assert.equal(moved.status, 401);
  assert.equal(codeOf(moved.data), "bad_proof");

  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
  const keys = await countKeys(tracker.db, ["chunk", "upload", "payload"]);
  assert.deepEqual(keys, { chunk: 0, upload: 0, payload: 0 });
});

Deno.test("a tracker process changes a peer's record and announcements only with that peer's signature", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  const victim = await member(tracker);
  await victim.client.register({ host: "127.0.0.2", port: 5801, name: "victim" });
  const up = await victim.client.upload(new Uint8Array(2 * 1024 * 1024 + 1).fill(7));
  await victim.client.announce(up.payloadId, victim.identity.peerId, Uint8Array.of(0b1110_0000));
  const thief: TestIdentity = await testIdentity();
  const url = tracker.url;

  // The victim's id and public key, signed with another key.
  const claim = await signedRegistration(thief, { host: "127.0.0.66", port: 5801 });
  const forged = { ...claim, peerId: victim.identity.peerId, publicKey: victim.identity.publicKey };
  const a = await send(`${url}/peers`, "POST", { json: forged });
  assert.equal(a.status, 403);
  assert.equal(codeOf(a.data), "bad_signature");
  // The victim's id with the thief's key.
  const b = await send(`${url}/peers`, "POST", {
    json: { ...claim, peerId: victim.identity.peerId },
  });
  assert.equal(b.status, 403);
  assert.equal(codeOf(b.data), "peer_id_mismatch");
  // The victim's address under the thief's own identity, from elsewhere.
  const c = await send(`${url}/peers`, "POST", {
    json: await signedRegistration(thief, { host: "127.0.0.2", port: 5801 }),
  });
  assert.equal(c.status, 403);
  assert.equal(codeOf(c.data), "address_taken");

  // Removing the victim: unsigned, or signed by the thief.
  const d = await send(`${url}/peers/${victim.identity.peerId}`, "DELETE");
  assert.equal(d.status, 403);
  assert.equal(codeOf(d.data), "signature_required");
  const e = await send(`${url}/peers/${victim.identity.peerId}`, "DELETE", {
    headers: await removalHeader({ ...thief, peerId: victim.identity.peerId }),
  });
  assert.equal(e.status, 403);
  assert.equal(codeOf(e.data), "bad_signature");

  // Overwriting the victim's announcement.
  const have = await signedHave(thief, up.payloadId, { chunks: [] });
  const f = await send(`${url}/payloads/${up.payloadId}/have`, "POST", {
    json: { ...have, peerId: victim.identity.peerId },
  });
  assert.equal(f.status, 403);
  assert.equal(codeOf(f.data), "bad_signature");

  // The victim's own messages, played again by someone who saw them.
  const replayed = await signedRegistration(victim.identity, { host: "127.0.0.2", port: 5801 });
  assert.equal((await send(`${url}/peers`, "POST", { json: replayed })).status, 200);
  const g = await send(`${url}/peers`, "POST", { json: replayed });
  assert.equal(g.status, 403);
  assert.equal(codeOf(g.data), "replayed_signature");

  const list = PeerList.parse((await send(`${url}/peers`, "GET")).data);
  assert.deepEqual(list.peers.map((p) => [p.peerId, p.host, p.port]), [
    [victim.identity.peerId, "127.0.0.2", 5801],
  ]);
  const holders = await victim.client.holders(up.payloadId);
  assert.equal(holders.peers[0].ranges, "0-2", "the victim's announcement stands");
  // The victim itself may leave.
  await victim.client.unregister(victim.identity.peerId);
  assert.deepEqual(PeerList.parse((await send(`${url}/peers`, "GET")).data).peers, []);
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

Deno.test("a tracker process answers a flood from one address with 429 and Retry-After", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--rate-limit", "5"] });
  const answers = [];
  for (let i = 0; i < 30; i++) answers.push(await send(`${tracker.url}/health`, "GET"));
  const limited = answers.filter((a) => a.status === 429);
  assert.ok(answers.filter((a) => a.status === 200).length >= 10, "the burst passes");
  assert.ok(limited.length >= 10, `${limited.length} of 30 were refused`);
  assert.equal(codeOf(limited[0].data), "rate_limited");
  assert.ok(Number(limited[0].headers.get("retry-after")) >= 1);
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
  // A flood costs one activity record per run of refusals, not one per request.
  const records = (await Deno.readTextFile(tracker.log)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  const refusals = records.filter((r) => r.code === "rate_limited");
  assert.ok(refusals.length >= 1 && refusals.length < limited.length, `${refusals.length} records`);
});

/** Reads from `conn` until it closes; the text read and when it closed (ms after `t0`). */
async function readToEnd(conn: Deno.Conn, t0: number): Promise<{ text: string; ms: number }> {
  let text = "";
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null;
    }
    if (n === null) return { text, ms: performance.now() - t0 };
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
}

Deno.test("a tracker process cuts a request head that trickles, and connections over the per-address cap", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({
    dir: dir.path,
    args: ["--head-timeout", "2", "--max-conns-per-address", "4"],
  });
  // A head sent a byte every 100 ms never completes: 408 and the close after about 2 s.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: tracker.port });
    const t0 = performance.now();
    const ended = readToEnd(conn, t0);
    await conn.write(new TextEncoder().encode("GET /peers HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    let closed = false;
    ended.then(() => closed = true);
    for (let i = 0; i < 50 && !closed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      await conn.write(new TextEncoder().encode("a")).catch(() => closed = true);
    }
    const { text, ms } = await ended;
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.equal(codeOf(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4))), "timeout");
    assert.ok(ms < 4500, `cut after ${Math.round(ms)} ms`);
  }
  // Malformed requests get a 4xx JSON answer before the close.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: tracker.port });
    const t0 = performance.now();
    await conn.write(new TextEncoder().encode("\x00\xffNOT HTTP\r\n\r\n"));
    const { text } = await readToEnd(conn, t0);
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"bad_request"/);
  }
  // Four connections from one address are held; the fifth is answered 429 and closed.
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port: tracker.port }));
    }
    using fifth = await Deno.connect({ hostname: "127.0.0.1", port: tracker.port });
    const { text } = await readToEnd(fifth, performance.now());
    assert.match(text, /^HTTP\/1\.1 429 /);
    assert.match(text, /"too_many_connections"/);
  } finally {
    for (const c of held) c.close();
  }
  // The tracker sees the held connections close a moment after this side does: until
  // then a new one may still be over the cap, so ask again for up to 2 s.
  let health = await send(`${tracker.url}/health`, "GET");
  for (let i = 0; i < 20 && health.status === 429; i++) {
    await new Promise((r) => setTimeout(r, 100));
    health = await send(`${tracker.url}/health`, "GET");
  }
  assert.equal(health.status, 200, "the tracker keeps serving");
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});

Deno.test("refused and broken uploads leave no keys in the tracker's KV", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--max-upload", "1MiB"] });
  const url = `${tracker.url}/payloads`;
  const big = new Uint8Array(3 * 1024 * 1024).fill(9);
  const declared = await send(url, "POST", {
    body: big,
    headers: { "content-type": "application/octet-stream" },
  });
  assert.equal(declared.status, 413);
  // Streamed without a length: refused once over the limit, after a chunk was cut.
  const streamed = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: new Blob([big]).stream(),
  });
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();
  // Half a body, then the client hangs up.
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port: tracker.port });
    await conn.write(
      new TextEncoder().encode(
        "POST /payloads HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" +
          `Content-Length: ${1024 * 1024}\r\n\r\n`,
      ),
    );
    await conn.write(new Uint8Array(700 * 1024).fill(5));
  }
  // One upload that is taken: its chunk is all that stays.
  const ok = await send(url, "POST", {
    body: new Uint8Array(100_000).fill(3),
    headers: { "content-type": "application/octet-stream" },
  });
  assert.equal(ok.status, 201);
  assert.equal((await send(`${tracker.url}/health`, "GET")).status, 200);
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
  const keys = await countKeys(tracker.db, ["chunk", "upload", "payload"]);
  // 100,000 bytes are one chunk of two KV pieces (64,000 bytes each at most).
  assert.deepEqual(keys, { chunk: 2, upload: 0, payload: 1 });
});

Deno.test("a tracker process with --tls-cert serves HTTPS, and the tracker client talks to it", async () => {
  await using dir = await tempDir();
  using cert = await testCert();
  await Deno.writeTextFile(`${dir.path}/cert.pem`, cert.cert);
  await Deno.writeTextFile(`${dir.path}/key.pem`, cert.key, { mode: 0o600 });
  await using tracker = await spawnTracker({
    dir: dir.path,
    args: ["--tls-cert", `${dir.path}/cert.pem`, "--tls-key", `${dir.path}/key.pem`],
  });
  assert.match(tracker.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const identity = await testIdentity();
  const client = new TrackerClient(tracker.url, { identity, httpClient: cert.client });
  const reg = RegisterPeerResponse.parse(await client.register({ port: 5801 }));
  assert.equal(reg.created, true);
  assert.deepEqual((await client.peers()).map((p) => p.peerId), [identity.peerId]);
  // Plain HTTP to the same port gets no answer it could take for the tracker's.
  const plain = await fetch(tracker.url.replace("https:", "http:") + "/health")
    .then((r) => r.status, () => "refused");
  assert.notEqual(plain, 200);
  const exit = await tracker.stop();
  assert.equal(exit.status.code, 0, exit.stderr);
});
