/**
 * A stranger cannot fill or exhaust a real peer's store (issue 11), on loopback: a
 * raw client with an identity of its own completes the link handshake, then pushes
 * chunks nobody agreed to, offers manifests of 524,288 hashes, and offers more than
 * `--max-store` leaves room for. Each is refused with its ERROR code and an activity
 * record, the peer never asks for the manifests, and its memory and disk stay
 * bounded.
 */
import assert from "node:assert/strict";
import { followLog, type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { tempDir } from "./_tracker_process.ts";
import { connectPeer } from "../peer/dial.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { createRequestHandler } from "../peer/request_handler.ts";
import { fakeLog, memoryTable, tempStore, testIdentity } from "../peer/_fakes.ts";
import { RemoteError } from "../proto/answers.ts";
import { StatusAnswer } from "../proto/control.ts";
import { CHUNK_SIZE } from "../proto/manifest.ts";

const MiB = 1024 * 1024;

/** Bytes of every file under `dir`, recursively. */
async function bytesUnder(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    n += e.isDirectory ? await bytesUnder(path) : (await Deno.stat(path)).size;
  }
  return n;
}

async function rss(peer: PeerProcess): Promise<number> {
  const res = await fetch(`${peer.http}/_p2p/status`, { headers: peer.auth });
  return StatusAnswer.parse(await res.json()).memory.rss;
}

/** `p` rejects with a RemoteError of `code`. */
async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e) => e instanceof RemoteError && e.code === code);
}

Deno.test("a stranger's unsolicited pushes, 524,288-hash manifests and pushes over --max-store are refused, memory and disk bounded", async () => {
  await using dir = await tempDir();
  await using peer = await spawnPeer({
    dataDir: `${dir.path}/a`,
    host: "127.0.0.2",
    args: ["--max-store", "3MiB"],
  });
  await using log = await followLog(peer);
  // The stranger holds a real payload of 4 MiB + 1 and serves it like a peer.
  await using own = await tempStore();
  await using table = await memoryTable();
  const big = await own.importStream(ReadableStream.from([new Uint8Array(4 * MiB + 1).fill(7)]));
  const halves = [new Uint8Array(MiB).fill(9), new Uint8Array(MiB).fill(8)];
  const small = await own.importStream(ReadableStream.from(halves));
  const asked: string[] = [];
  const serve = createRequestHandler({
    store: own,
    table,
    log: fakeLog(),
    signal: AbortSignal.timeout(60_000),
  });
  const stranger = await testIdentity("stranger");
  const conn: PeerConnection = await connectPeer({ hostname: peer.host, port: peer.port }, {
    hello: stranger.hello,
    link: { sign: stranger.sign },
    handler: (msg, c) => {
      if (msg.type === "MANIFEST_REQ") asked.push(msg.type);
      return serve(msg, c);
    },
  });
  try {
    const before = await rss(peer);
    // 1. Unsolicited pushes: four chunks of 1 MiB, none agreed.
    for (let i = 0; i < 4; i++) {
      const body = await own.readChunk(big.payloadId, i);
      await refused(
        conn.request({ type: "PUT_CHUNK", header: { payloadId: big.payloadId, index: i }, body }),
        "not_agreed",
      );
    }
    // 2. Offers of 524,288 hashes: chunk size 1, and 512 GiB of 1 MiB chunks.
    const id = "ab".repeat(32);
    await refused(
      conn.request({
        type: "HAVE_REQ",
        header: { payloadId: id, offer: { size: 524_288, chunkSize: 1 } },
      }),
      "bad_chunk_size",
    );
    await refused(
      conn.request({
        type: "HAVE_REQ",
        header: { payloadId: id, offer: { size: 524_288 * CHUNK_SIZE, chunkSize: CHUNK_SIZE } },
      }),
      "payload_too_large",
    );
    // 3. More than --max-store leaves room for.
    const offer = (m: { manifest: { size: number } }) => ({
      size: m.manifest.size,
      chunkSize: CHUNK_SIZE,
    });
    await refused(
      conn.request({ type: "HAVE_REQ", header: { payloadId: big.payloadId, offer: offer(big) } }),
      "store_full",
    );
    assert.deepEqual(asked, [], "no manifest was asked for any refused offer");
    // A payload that fits is agreed to, fetched and stored; then the store is full.
    await conn.request({
      type: "HAVE_REQ",
      header: { payloadId: small.payloadId, offer: offer(small) },
    });
    assert.deepEqual(asked, ["MANIFEST_REQ"]);
    for (let i = 0; i < 2; i++) {
      const body = await own.readChunk(small.payloadId, i);
      await conn.request({
        type: "PUT_CHUNK",
        header: { payloadId: small.payloadId, index: i },
        body,
      });
    }
    await refused(
      conn.request({ type: "HAVE_REQ", header: { payloadId: big.payloadId, offer: offer(big) } }),
      "store_full",
    );
    const after = await rss(peer);
    assert.ok(after - before < 64 * MiB, `RSS grew by ${(after - before) / MiB} MiB`);
    const stored = await bytesUnder(`${dir.path}/a/store/data`);
    // Its file: 2 MiB and a trailer byte of which chunks it holds.
    assert.equal(stored, 2 * MiB + 1, "only the agreed payload is on disk");
    await log.waitFor(
      (r) => r.type === "chunk.refused" && r.code === "not_agreed",
      "a refused push",
    );
    const count = () => log.records.filter((r) => r.type === "offer.refused").length;
    await log.waitFor(() => count() === 4, "four refused offers");
    const refusals = log.records.filter((r) => r.type === "offer.refused").map((r) => r.code);
    assert.deepEqual(refusals, ["bad_chunk_size", "payload_too_large", "store_full", "store_full"]);
  } finally {
    conn.close();
    await conn.closed;
  }
});
