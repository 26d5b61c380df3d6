import assert from "node:assert/strict";
import { PeerTable } from "./peer_table.ts";

const A = "a".repeat(40);
const B = "b".repeat(40);
const SELF = "f".repeat(40);

Deno.test("PeerTable keeps sightings in KV across reopen and never stores itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-peers-" });
  try {
    {
      using kv = await Deno.openKv(`${dir}/peers.kv`);
      const t = await PeerTable.open(kv, SELF);
      assert.equal(
        await t.upsert({ peerId: SELF, host: "127.0.0.1", ports: { chunk: 1 } }, "seed"),
        undefined,
      );
      await t.upsert(
        { peerId: A, host: "127.0.0.2", ports: { chunk: 5801 }, name: "a" },
        "seed",
        1000,
      );
      await t.upsert({ peerId: A, host: "127.0.0.2", ports: { chunk: 5801 } }, "tracker", 2000);
      await t.seen(A, 1.234, 3000);
    }
    using kv = await Deno.openKv(`${dir}/peers.kv`);
    const t = await PeerTable.open(kv, SELF);
    const a = t.get(A)!;
    assert.deepEqual(a.sources, ["seed", "tracker"]);
    assert.equal(a.name, "a");
    assert.equal(a.firstSeen, 1000);
    assert.equal(a.lastSeen, 3000);
    assert.equal(a.rttMs, 1.2);
    assert.equal(t.get(SELF), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PeerTable.ageOut() forgets only failing peers not seen for a while", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-peers-" });
  try {
    using kv = await Deno.openKv(`${dir}/peers.kv`);
    const t = await PeerTable.open(kv, SELF);
    await t.upsert({ peerId: A, host: "127.0.0.2", ports: { chunk: 1 } }, "seed", 0);
    await t.upsert({ peerId: B, host: "127.0.0.3", ports: { chunk: 1 } }, "seed", 0);
    await t.failed(A);
    assert.equal(await t.ageOut(1000, 5000), 1);
    assert.deepEqual(t.list().map((p) => p.peerId), [B]);
    // Exchange does not refresh lastSeen: only direct contact does.
    await t.upsert({ peerId: B, host: "127.0.0.3", ports: { chunk: 1 } }, "exchange", 9000);
    assert.equal(t.get(B)!.lastSeen, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
