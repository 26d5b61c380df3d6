import assert from "node:assert/strict";
import { spawnTracker, tempDir } from "./_tracker_process.ts";
import { type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { HolderList, UploadResponse } from "../proto/tracker.ts";

Deno.test("a payload uploaded to the tracker is spread to --replicas peers chosen by rendezvous", async () => {
  await using dir = await tempDir();
  // A short TTL makes peers heartbeat every second.
  await using tracker = await spawnTracker({ dir: dir.path, args: ["--peer-ttl", "3"] });
  const peers: PeerProcess[] = [];
  for (const [i, name] of ["a", "b", "c"].entries()) {
    peers.push(
      await spawnPeer({
        dataDir: `${dir.path}/${name}`,
        host: `127.0.0.${i + 2}`,
        name,
        tracker: tracker.url,
        replicas: 2,
      }),
    );
  }
  try {
    const bytes = crypto.getRandomValues(new Uint8Array(65536)).slice();
    const data = new Uint8Array(2 * 1024 * 1024 + 5000);
    for (let off = 0; off < data.length; off += bytes.length) {
      data.set(bytes.subarray(0, data.length - off), off);
    }
    const up = UploadResponse.parse(
      await (await fetch(`${tracker.url}/payloads`, {
        method: "POST",
        body: data,
        headers: { "content-type": "application/octet-stream" },
      })).json(),
    );
    // Spreading happens on heartbeats (about one a second here): poll the tracker's
    // view for up to 15 s; this waits on time-driven behaviour, not on a race.
    let holders = HolderList.parse(
      await (await fetch(`${tracker.url}/payloads/${up.payloadId}/peers`)).json(),
    );
    const deadline = Date.now() + 15_000;
    while (holders.peers.filter((p) => p.count === up.chunks).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      holders = HolderList.parse(
        await (await fetch(`${tracker.url}/payloads/${up.payloadId}/peers`)).json(),
      );
    }
    const complete = holders.peers.filter((p) => p.count === up.chunks);
    assert.equal(complete.length, 2, JSON.stringify(holders.peers));
    // The copies are real: each holder exports the same bytes.
    for (const h of complete) {
      const peer = peers.find((p) => p.peerId === h.peerId)!;
      const res = await fetch(`${peer.http}/_p2p/payloads/${up.payloadId}/content`, {
        headers: peer.auth,
      });
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), data);
    }
  } finally {
    for (const p of peers) await p.stop("SIGTERM");
  }
});
