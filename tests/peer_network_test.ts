/**
 * End-to-end tests of a network of real `p2p peer` processes on 127.0.0.2, .3, …
 * (each peer its own loopback address, every port 0): discovery through seeds and
 * peer exchange or a tracker, multi-source downloads, a source that dies or lies, a
 * download resumed after a crash, remote logs, garbage connections, shutdown, and
 * the client commands with no peer running.
 *
 * Tests wait for what a peer did by following its activity log
 * (`GET /_p2p/log?follow=1`), never by sleeping.
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnTracker, tempDir } from "./_tracker_process.ts";
import {
  controlDownload,
  type ControlEvent,
  followLog,
  p2pClient,
  peerAddress,
  type PeerProcess,
  spawnPair,
  spawnPeer,
} from "./_peer_process.ts";
import { HolderList, PeerList } from "../proto/tracker.ts";
import { connectPeer } from "../peer/dial.ts";
import { RemoteError } from "../proto/answers.ts";
import { encodePreamble } from "../proto/frame.ts";
import { testIdentity } from "../peer/_link_fixtures.ts";

const MiB = 1024 * 1024;

/** `host:port` of a peer's chunk service, as `--peer` takes it. */

/** `size` pseudo-random bytes (xorshift32 from `seed`), so each test has its own payload. */
function pseudoRandom(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** Writes a pseudo-random payload to `DIR/input.bin`; returns its path, size and chunk count. */
async function writePayload(
  dir: string,
  size: number,
  seed: number,
): Promise<{ path: string; size: number; chunks: number; sha256: string }> {
  const bytes = pseudoRandom(size, seed);
  const path = `${dir}/input-${seed}.bin`;
  await Deno.writeFile(path, bytes);
  return { path, size, chunks: Math.ceil(size / MiB), sha256: await sha256(bytes) };
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `p2p put FILE --json` on a peer; asserts success and returns the summary. */
/**
 * `p2p put FILE --json` on `peer`; with `stdin`, the file's bytes go through standard
 * input (`put -`), so the peer keeps them in a payload file of its own rather than
 * linking to the file.
 */
async function put(
  peer: PeerProcess,
  file: string,
  stdin = false,
): Promise<Record<string, unknown>> {
  const run = stdin
    ? await p2pClient(["put", "-", "--json", "--node", peer.http], await Deno.readFile(file))
    : await p2pClient(["put", file, "--json", "--node", peer.http]);
  assert.equal(run.code, 0, `put on ${peer.host}: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** What `p2p get --json` prints. */
interface GetSummary {
  payloadId: string;
  bytes: number;
  fetchedBytes: number;
  resumedChunks: number;
  chunksBySource: Record<string, number>;
  dropped: { source: string; reason: string }[];
}

/** `p2p get ID -o FILE --json` on a peer; asserts success and returns the summary. */
async function get(peer: PeerProcess, id: string, out: string): Promise<GetSummary> {
  const run = await p2pClient(["get", id, "-o", out, "--json", "--node", peer.http]);
  assert.equal(run.code, 0, `get on ${peer.host}: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** The SHA-256 of what a peer exports for a payload (`GET /_p2p/payloads/{id}/content`). */
async function contentSha256(peer: PeerProcess, id: string): Promise<string> {
  const res = await fetch(`${peer.http}/_p2p/payloads/${id}/content`, { headers: peer.auth });
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.status, 200, `content of ${id} on ${peer.host}`);
  return await sha256(bytes);
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

/**
 * Peer a on 127.0.0.2 (two replicas), and b and d on .3 and .4 seeded with it, once
 * both are connected to a. `args` go to all three. Disposing stops them all.
 */
async function threePeers(dir: string, args: string[] = []) {
  await using stack = new AsyncDisposableStack();
  const a = stack.use(
    await spawnPeer({ dataDir: `${dir}/a`, host: "127.0.0.2", name: "a", replicas: 2, args }),
  );
  const aLog = stack.use(await followLog(a));
  const b = stack.use(
    await spawnPeer({ dataDir: `${dir}/b`, host: "127.0.0.3", seeds: [peerAddress(a)], args }),
  );
  const d = stack.use(
    await spawnPeer({ dataDir: `${dir}/d`, host: "127.0.0.4", seeds: [peerAddress(a)], args }),
  );
  for (const p of [b, d]) {
    await aLog.waitFor(
      (r) => r.type === "conn.open" && r.peerId === p.peerId,
      `${p.host} to connect`,
    );
  }
  const rest = stack.move();
  return { a, b, d, [Symbol.asyncDispose]: () => rest.disposeAsync() };
}

/** Peer c on 127.0.0.5 that knows only `seed`, once it has exchanged peers with it. */
async function lateJoiner(dir: string, seed: PeerProcess): Promise<PeerProcess> {
  const c = await spawnPeer({ dataDir: `${dir}/c`, host: "127.0.0.5", seeds: [peerAddress(seed)] });
  try {
    await using cLog = await followLog(c);
    await cLog.waitFor(
      (r) => r.type === "exchange" && r.with === seed.peerId,
      `peer exchange with ${seed.host}`,
    );
  } catch (err) {
    await c[Symbol.asyncDispose]();
    throw err;
  }
  return c;
}

Deno.test("get on a peer that knows one seed downloads from several peers found by peer exchange, and where lists every holder", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 8 * MiB + 12_345, 1);
  await using peers = await threePeers(dir.path);
  const { a, b, d } = peers;

  const stored = await put(a, input.path);
  assert.equal(stored.chunks, input.chunks);
  assert.equal(stored.underReplicated, 0, JSON.stringify(stored));
  // Two replicas and two other peers: each holds every chunk.
  assert.deepEqual(stored.replicas, { [b.peerId]: input.chunks, [d.peerId]: input.chunks });
  const id = String(stored.payloadId);

  await using c = await lateJoiner(dir.path, a);

  const out = `${dir.path}/out.bin`;
  const got = await get(c, id, out);
  assert.equal(await sha256(await Deno.readFile(out)), input.sha256, "the file is the input");
  assert.equal(got.bytes, input.size);
  assert.equal(sum(got.chunksBySource), input.chunks, JSON.stringify(got.chunksBySource));
  const sources = Object.keys(got.chunksBySource);
  assert.ok(sources.length >= 2, `chunks from several sources: ${JSON.stringify(got)}`);
  for (const s of sources) assert.ok([a, b, d].some((p) => p.peerId === s), `source ${s} is known`);

  const where = await p2pClient(["where", id, "--json", "--node", c.http]);
  assert.equal(where.code, 0, where.stderr);
  const map = JSON.parse(where.stdout) as {
    chunks: number;
    rows: { peerId: string; address: string; count: number }[];
  };
  assert.equal(map.chunks, input.chunks);
  for (const p of [a, b, d]) {
    const row = map.rows.find((r) => r.peerId === p.peerId);
    assert.ok(row, `where lists ${p.host}: ${where.stdout}`);
    assert.equal(row.count, input.chunks, `${p.host} holds every chunk`);
    assert.equal(row.address, peerAddress(p));
  }
});

Deno.test("a download completes and verifies when one of its sources is killed mid-way", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 16 * MiB, 2);
  // 2 MiB/s per source: three sources need about 3 s for 16 MiB.
  const slow = ["--max-upload-rate", "2MiB"];
  await using peers = await threePeers(dir.path, slow);
  const { a, b } = peers;
  const stored = await put(a, input.path);
  assert.equal(stored.underReplicated, 0, JSON.stringify(stored));
  const id = String(stored.payloadId);

  await using c = await lateJoiner(dir.path, a);

  let killedAt: ControlEvent | undefined;
  const done = await controlDownload(c, id, async (e) => {
    if (e.type === "progress" && !killedAt && Number(e.done) > 0) {
      killedAt = e;
      await b.kill();
    }
  });
  assert.ok(killedAt, "a progress event with done > 0 came before the end");
  assert.equal(killedAt.sources, 3, `three sources at the start: ${JSON.stringify(killedAt)}`);
  assert.ok(
    Number(killedAt.done) < input.chunks,
    `b was killed mid-way: ${JSON.stringify(killedAt)}`,
  );
  assert.equal(done.type, "done", JSON.stringify(done));
  const bySource = done.chunksBySource as Record<string, number>;
  assert.equal(sum(bySource), input.chunks, JSON.stringify(bySource));
  assert.ok((bySource[b.peerId] ?? 0) < input.chunks, JSON.stringify(bySource));
  for (const drop of done.dropped as { source: string }[]) {
    assert.equal(
      drop.source,
      b.peerId,
      `only the killed source is dropped: ${JSON.stringify(done)}`,
    );
  }
  assert.equal(await contentSha256(c, id), input.sha256, "c's copy is the input");
});

Deno.test("a source serving corrupted chunks is dropped for failing verification and the file is still right", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 8 * MiB, 3);
  // a is slow, so b, which answers at once, gets requests of its own.
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    args: ["--max-upload-rate", "4MiB"],
  });
  await using b = await spawnPeer({ dataDir: `${dir.path}/b`, host: "127.0.0.3" });
  const id = String((await put(a, input.path)).payloadId);
  // Through standard input: b keeps a payload file of its own (a put by path links to the file).
  assert.equal((await put(b, input.path, true)).payloadId, id);

  // A disk fault on b: one flipped byte in every chunk of its file, same size (b does not re-hash).
  let corrupted = 0;
  const path = `${b.dataDir}/store/data/${id}`;
  const bytes = await Deno.readFile(path);
  for (let at = 0; at < input.size; at += MiB) {
    bytes[Math.min(at + MiB / 2, input.size - 1)] ^= 0xff;
    corrupted++;
  }
  await Deno.writeFile(path, bytes);
  assert.equal(corrupted, input.chunks);

  await using c = await spawnPeer({
    dataDir: `${dir.path}/c`,
    host: "127.0.0.4",
    seeds: [peerAddress(a), peerAddress(b)],
  });
  await using cLog = await followLog(c);
  for (const p of [a, b]) {
    await cLog.waitFor(
      (r) => r.type === "exchange" && r.with === p.peerId,
      `exchange with ${p.host}`,
    );
  }

  const out = `${dir.path}/out.bin`;
  const got = await get(c, id, out);
  assert.equal(await sha256(await Deno.readFile(out)), input.sha256, "the file is the input");
  const drop = got.dropped.find((d) => d.source === b.peerId);
  assert.ok(drop, `b is dropped: ${JSON.stringify(got)}`);
  assert.match(drop.reason, /verif/i);
  assert.deepEqual(got.chunksBySource, { [a.peerId]: input.chunks });
});

Deno.test("a download interrupted by SIGKILL resumes from the chunks already stored", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 16 * MiB - 4321, 4);
  const slow = ["--max-upload-rate", "4MiB"];
  await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2", args: slow });
  await using b = await spawnPeer({ dataDir: `${dir.path}/b`, host: "127.0.0.3", args: slow });
  const id = String((await put(a, input.path)).payloadId);
  assert.equal((await put(b, input.path)).payloadId, id);

  const cOpts = {
    dataDir: `${dir.path}/c`,
    host: "127.0.0.4",
    seeds: [peerAddress(a), peerAddress(b)],
  };
  {
    await using c = await spawnPeer(cOpts);
    {
      await using cLog = await followLog(c);
      for (const p of [a, b]) {
        await cLog.waitFor(
          (r) => r.type === "exchange" && r.with === p.peerId,
          `exchange with ${p.host}`,
        );
      }
    }
    let killedAt: number | undefined;
    const ended = await controlDownload(c, id, async (e) => {
      if (e.type === "progress" && killedAt === undefined && Number(e.done) >= 3) {
        killedAt = Number(e.done);
        await c.kill();
      }
    }).then((e) => JSON.stringify(e), (err: Error) => err.message);
    assert.ok(killedAt !== undefined, `c was killed after 3 chunks; the download ended: ${ended}`);
    assert.ok(killedAt < input.chunks, `c was killed mid-way at ${killedAt}`);
  }

  // Same data dir, same address: the store still holds what was verified before the crash.
  await using c = await spawnPeer(cOpts);
  const out = `${dir.path}/out.bin`;
  const got = await get(c, id, out);
  assert.equal(await sha256(await Deno.readFile(out)), input.sha256, "the file is the input");
  assert.ok(got.resumedChunks >= 3, `chunks kept from the first run: ${JSON.stringify(got)}`);
  assert.ok(got.resumedChunks < input.chunks, JSON.stringify(got));
  assert.ok(got.fetchedBytes < input.size, `only the rest is fetched: ${JSON.stringify(got)}`);
  assert.ok(got.fetchedBytes >= input.size - got.resumedChunks * MiB, JSON.stringify(got));
  assert.equal(sum(got.chunksBySource), input.chunks - got.resumedChunks);
});

Deno.test("peers that know only the tracker find a payload's holders through it, and every received chunk is announced", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 6 * MiB + 1, 5);
  // A short TTL: peers heartbeat about once a second.
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--peer-ttl", "3"] });
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    tracker: tracker.url,
  });
  await using aLog = await followLog(a);
  await using c = await spawnPeer({
    dataDir: `${dir.path}/c`,
    host: "127.0.0.3",
    tracker: tracker.url,
  });
  await using cLog = await followLog(c);
  await aLog.waitFor((r) => r.type === "tracker.register", "a to register");
  await cLog.waitFor((r) => r.type === "tracker.register", "c to register");

  const id = String((await put(a, input.path)).payloadId);
  await aLog.waitFor(
    (r) => r.type === "tracker.announce" && r.payloadId === id && r.count === input.chunks,
    "a to announce every chunk",
  );
  const holders = async () =>
    HolderList.parse(await (await fetch(`${tracker.url}/payloads/${id}/peers`)).json());
  const before = await holders();
  assert.equal(before.tracker.holds, false, "the tracker has the manifest, not the bytes");
  assert.deepEqual(
    before.peers.map((p) => [p.peerId, p.host, p.count]),
    [[a.peerId, a.host, input.chunks]],
  );

  const out = `${dir.path}/out.bin`;
  const got = await get(c, id, out);
  assert.equal(await sha256(await Deno.readFile(out)), input.sha256, "the file is the input");
  assert.deepEqual(got.chunksBySource, { [a.peerId]: input.chunks });

  await cLog.waitFor(
    (r) => r.type === "tracker.announce" && r.payloadId === id && r.count === input.chunks,
    "c to announce every chunk it received",
  );
  const after = await holders();
  assert.deepEqual(
    after.peers.map((p) => [p.peerId, p.count]).sort(),
    [[a.peerId, input.chunks], [c.peerId, input.chunks]].sort(),
  );
});

Deno.test("p2p log --peer reads another peer's activity over TCP, and p2p peers lists that peer with its address", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 2 * MiB, 6);
  await using pair = await spawnPair(dir.path, { replicas: 1 });
  const { a, b } = pair;
  const stored = await put(a, input.path);
  assert.deepEqual(stored.replicas, { [b.peerId]: input.chunks });

  const json = await p2pClient(["log", "--peer", b.peerId, "--json", "--node", a.http]);
  assert.equal(json.code, 0, json.stderr);
  const records = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(
    records.some((r) => r.type === "peer.start" && r.peerId === b.peerId),
    `b's peer.start: ${json.stdout}`,
  );
  const received = records.filter((r) =>
    r.type === "chunk.received" && r.from === a.peerId && r.payloadId === stored.payloadId
  );
  assert.equal(received.length, input.chunks, `b's chunk.received records: ${json.stdout}`);

  const text = await p2pClient(["log", "--peer", b.peerId, "--node", a.http]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /chunk\.received .*via=push/);

  const peers = await p2pClient(["peers", "--json", "--node", a.http]);
  assert.equal(peers.code, 0, peers.stderr);
  const row =
    (JSON.parse(peers.stdout) as { peerId: string; host: string; ports: { chunk: number } }[])
      .find((p) => p.peerId === b.peerId);
  assert.ok(row, `peers lists b: ${peers.stdout}`);
  assert.equal(row.host, b.host);
  assert.equal(row.ports.chunk, b.port);
});

Deno.test("p2p log --peer --type prints only the records of that type", async () => {
  await using dir = await tempDir();
  await using pair = await spawnPair(dir.path);
  const { a, b } = pair;
  const run = await p2pClient([
    "log",
    "--peer",
    b.peerId,
    "--type",
    "peer.start",
    "--json",
    "--node",
    a.http,
  ]);
  assert.equal(run.code, 0, run.stderr);
  const types = run.stdout.trim().split("\n").map((l) => JSON.parse(l).type);
  assert.ok(types.includes("peer.start"), run.stdout);
  assert.deepEqual(
    [...new Set(types)],
    ["peer.start"],
    "--type is applied to another peer's log as to this peer's",
  );
});

Deno.test("GET /_p2p/log?follow=1&type=T streams only new records of that type", async () => {
  await using dir = await tempDir();
  await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2" });
  await using queries = await followLog(a, { type: "query" });
  // b's seed contact makes a record conn.open, then query.peers when b asks for peers.
  await using b = await spawnPeer({
    dataDir: `${dir.path}/b`,
    host: "127.0.0.3",
    seeds: [peerAddress(a)],
  });
  await queries.waitFor((r) => r.type === "query.peers" && r.from === b.peerId, "b's PEERS?");
  assert.deepEqual(
    queries.records.filter((r) => !r.type.startsWith("query.")).map((r) => r.type),
    [],
    "records of other types are not streamed",
  );
});

Deno.test("client commands exit 1 with one line when no peer is running, get with any reference too", async () => {
  await using dir = await tempDir();
  const file = `${dir.path}/in.txt`;
  await Deno.writeTextFile(file, "hello");
  const node = ["--node", "http://127.0.0.1:1"];
  const id = "ab".repeat(32);
  const commands = [
    ["put", file],
    ["get", id, "-o", `${dir.path}/out`],
    ["where", id],
    ["peers"],
    ["status"],
    ["log"],
    ["log", "--peer", "cd".repeat(20)],
    ["discover", "127.0.0.2"],
  ];
  const runs = await Promise.all(commands.map((c) => p2pClient([...c, ...node])));
  commands.forEach((c, i) => {
    const run = runs[i];
    const what = `p2p ${c[0]}`;
    assert.equal(run.code, 1, `${what}: exit status (stderr ${JSON.stringify(run.stderr)})`);
    assert.equal(run.stdout, "", `${what}: nothing on stdout`);
    assert.match(
      run.stderr,
      /^p2p: No peer is running at http:\/\/127\.0\.0\.1:1\b[^\n]*\n$/,
      what,
    );
  });

  // Any text may name a payload (a name, a prefix, a whole id), and only the peer can
  // resolve it: with no peer, a reference that names nothing still gets one clear line.
  for (const ref of ["xyz", "AB".repeat(32), "ab".repeat(31), "", "a/b c"]) {
    const run = await p2pClient(["get", ref, ...node]);
    assert.equal(run.code, 1, `get '${ref}': exit status`);
    assert.equal(run.stdout, "", `get '${ref}': nothing on stdout`);
    assert.match(
      run.stderr,
      /^p2p: No peer is running at http:\/\/127\.0\.0\.1:1\b[^\n]*\n$/,
      `get '${ref}': one line`,
    );
  }
});

Deno.test("POST /_p2p/discover answers bad bodies and ranges with 400 JSON and keeps serving", async () => {
  await using dir = await tempDir();
  await using peer = await spawnPeer({ dataDir: `${dir.path}/a` });
  const cases: [string, string, RegExp][] = [
    ["{", "invalid_json", /not JSON/],
    ['{"range": 5}', "invalid_body", /range/],
    ['{"range": "10.0.0.0/8"}', "invalid_range", /at most 4096/],
    ['{"range": "lan"}', "invalid_range", /Invalid range 'lan'/],
    ['{"range": "10.0.0.9-10.0.0.1"}', "invalid_range", /end comes before the start/],
  ];
  for (const [body, code, message] of cases) {
    const res = await fetch(`${peer.http}/_p2p/discover`, {
      method: "POST",
      body,
      headers: peer.auth,
    });
    assert.equal(res.status, 400, body);
    const e = (await res.json()).error;
    assert.equal(e.code, code, body);
    assert.match(e.message, message, body);
  }
  // A loopback range where no device answers ARP: an empty report, not an error.
  const res = await fetch(`${peer.http}/_p2p/discover`, {
    method: "POST",
    headers: { ...peer.auth, "content-type": "application/json" },
    body: JSON.stringify({ range: "127.0.0.250/32" }),
  });
  assert.equal(res.status, 200);
  const report = await res.json();
  assert.deepEqual([report.ranges, report.found, report.stale], [
    ["127.0.0.250-127.0.0.250"],
    [],
    [],
  ]);
  assert.equal(
    (await fetch(`${peer.http}/_p2p/status`, { headers: peer.auth }).then((r) => r.json())).peerId,
    peer.peerId,
  );
});

Deno.test("a peer keeps serving after 200 garbage, idle and wrong-magic connections to its chunk port", async () => {
  await using dir = await tempDir();
  const input = await writePayload(dir.path, 4 * MiB + 99, 8);
  await using a = await spawnPeer({ dataDir: `${dir.path}/a`, host: "127.0.0.2" });
  await using aLog = await followLog(a);
  const id = String((await put(a, input.path)).payloadId);
  await using c = await spawnPeer({
    dataDir: `${dir.path}/c`,
    host: "127.0.0.3",
    seeds: [peerAddress(a)],
  });
  await using cLog = await followLog(c);
  await cLog.waitFor((r) => r.type === "exchange" && r.with === a.peerId, "exchange with a");
  // A bad connection ends as a conn.error, or as a conn.reject over the per-address cap;
  // the peer folds them per address and code (5 records a minute, then a count).
  const isRefusal = (r: { type: string }) => r.type === "conn.error" || r.type === "conn.reject";
  const refusals = () => aLog.records.filter(isRefusal).length;
  const errorsBefore = refusals();
  /** The probe's tries refused as busy: refusals too. */
  let busy = 0;

  const idle: Deno.TcpConn[] = [];
  try {
    const wrongVersion = encodePreamble(99);
    for (let batch = 0; batch < 200; batch += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, j) => {
        const i = batch + j;
        const conn = await Deno.connect({ hostname: a.host, port: a.port });
        switch (i % 4) {
          case 0: // random bytes, then close
            await conn.write(crypto.getRandomValues(new Uint8Array(1 + (i % 300))));
            break;
          case 1: // connect and stay silent (up to the per-address cap of 16, less the probe)
            if (idle.length < 15) {
              idle.push(conn);
              return;
            }
            break;
          case 2: // another protocol
            await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
            break;
          case 3: // right magic, unknown version
            await conn.write(wrongVersion);
            break;
        }
        conn.close();
      }));
    }
    assert.equal(idle.length, 15);

    // With 15 silent connections still open, a normal client is served. The closed ones
    // count against this address until the peer has seen them close (their records are
    // folded, so the log cannot tell): until then the peer answers busy, and the probe
    // tries again, a bounded number of times.
    const probe = await testIdentity("probe");
    const connect = () =>
      connectPeer({ hostname: a.host, port: a.port }, {
        hello: probe.hello,
        link: { sign: probe.sign },
      });
    let connected: Awaited<ReturnType<typeof connect>> | undefined;
    while (!connected) {
      try {
        connected = await connect();
      } catch (err) {
        if (!(err instanceof RemoteError && err.code === "busy") || ++busy > 2_000) throw err;
      }
    }
    await using client = connected;
    const pong = await client.request({ type: "PING", header: { ts: 1 } }, { timeoutMs: 5000 });
    assert.equal(pong.type, "PONG");
    const have = await client.request({ type: "HAVE_REQ", header: { payloadId: id } }, {
      timeoutMs: 5000,
    });
    assert.equal(have.type, "HAVE");

    const out = `${dir.path}/out.bin`;
    const got = await get(c, id, out);
    assert.equal(await sha256(await Deno.readFile(out)), input.sha256, "the file is the input");
    assert.deepEqual(got.chunksBySource, { [a.peerId]: input.chunks });
  } finally {
    for (const conn of idle) conn.close();
  }
  const status = await (await fetch(`${a.http}/_p2p/status`, { headers: a.auth })).json();
  assert.equal(status.peerId, a.peerId);
  // 200 bad connections cost a few records while the peer runs; at its stop the counted
  // ones are written, and each bad connection is accounted for, nothing more.
  assert.ok(refusals() - errorsBefore <= 40, `${refusals() - errorsBefore} records`);
  assert.equal((await a.stop("SIGTERM")).status.code, 0);
  const records = (await Deno.readTextFile(`${a.dataDir}/activity.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l)).filter(isRefusal);
  const counted = records.reduce((n, r) => n + (r.folded ? r.count : 1), 0);
  assert.ok(counted >= 200 + busy, `${counted} refusals counted for ${200 + busy} refused`);
});

Deno.test("SIGTERM stops a peer within seconds with status 0 and removes it from the tracker", async () => {
  await using dir = await tempDir();
  await using tracker = await spawnTracker({ dir: dir.path });
  await using a = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    tracker: tracker.url,
  });
  {
    await using aLog = await followLog(a);
    await aLog.waitFor((r) => r.type === "tracker.register", "a to register");
  }
  const livePeers = async () =>
    PeerList.parse(await (await fetch(`${tracker.url}/peers`)).json()).peers.map((p) => p.peerId);
  assert.deepEqual(await livePeers(), [a.peerId]);

  const started = performance.now();
  const exit = await a.stop("SIGTERM");
  const seconds = (performance.now() - started) / 1000;
  assert.equal(exit.status.code, 0, exit.stderr);
  assert.ok(seconds < 5, `stopped in ${seconds.toFixed(2)} s`);
  assert.match(exit.stdout, /^p2p peer: stopped$/m);
  assert.deepEqual(await livePeers(), [], "the tracker no longer lists a");
});
