/**
 * Peers and a tracker as real processes on loopback: a payload uploaded to the
 * tracker spreads to `--replicas` peers, on an open network and on one protected by
 * a network key (the peers prove the key on every tracker request and sign their own
 * registrations; a peer without the key is not let in).
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawnTracker, tempDir } from "./_tracker_process.ts";
import { type PeerProcess, spawnPeer } from "./_peer_process.ts";
import { TrackerClient } from "../peer/tracker_client.ts";
import { formatNetworkKey, newNetworkKey } from "../proto/network_key.ts";

async function spreads(withKey: boolean): Promise<void> {
  await using dir = await tempDir();
  const key = withKey ? newNetworkKey() : undefined;
  const keyArgs: string[] = [];
  if (key) {
    await Deno.writeTextFile(`${dir.path}/network.key`, formatNetworkKey(key), { mode: 0o600 });
    keyArgs.push("--network-key-file", `${dir.path}/network.key`);
  }
  // A short TTL makes peers heartbeat every second.
  await using tracker = await spawnTracker({
    dir: dir.path,
    args: ["--peer-ttl", "3", ...keyArgs],
  });
  const client = new TrackerClient(tracker.url, { networkKey: key, timeoutMs: 10_000 });
  const peers: PeerProcess[] = [];
  let outsider: PeerProcess | undefined;
  try {
    for (const [i, name] of ["a", "b", "c"].entries()) {
      peers.push(
        await spawnPeer({
          dataDir: `${dir.path}/${name}`,
          host: `127.0.0.${i + 2}`,
          name,
          tracker: tracker.url,
          replicas: 2,
          args: keyArgs,
        }),
      );
    }
    if (key) {
      // Same tracker, no key: its registrations are refused (401).
      outsider = await spawnPeer({
        dataDir: `${dir.path}/outsider`,
        host: "127.0.0.9",
        name: "outsider",
        tracker: tracker.url,
        replicas: 2,
      });
    }
    const bytes = crypto.getRandomValues(new Uint8Array(65536)).slice();
    const data = new Uint8Array(2 * 1024 * 1024 + 5000);
    for (let off = 0; off < data.length; off += bytes.length) {
      data.set(bytes.subarray(0, data.length - off), off);
    }
    const up = await client.upload(data);
    // Spreading happens on heartbeats (about one a second here): poll the tracker's
    // view for up to 15 s; this waits on time-driven behaviour, not on a race.
    let holders = await client.holders(up.payloadId);
    const deadline = Date.now() + 15_000;
    while (holders.peers.filter((p) => p.count === up.chunks).length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      holders = await client.holders(up.payloadId);
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
    // Only the members are listed, each with the registration it signed itself.
    const listed = await client.peers();
    assert.deepEqual(
      listed.map((p) => p.peerId).sort(),
      peers.map((p) => p.peerId).sort(),
    );
    assert.ok(listed.every((p) => p.record?.peerId === p.peerId));
  } finally {
    for (const p of peers) await p.stop("SIGTERM");
    await outsider?.stop("SIGTERM");
  }
}

Deno.test("a payload uploaded to the tracker is spread to --replicas peers chosen by rendezvous", async () => {
  await spreads(false);
});

Deno.test("with a network key, peers holding it register and spread a tracker upload; one without it is refused", async () => {
  await spreads(true);
});
