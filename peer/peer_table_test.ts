import assert from "node:assert/strict";
import { PeerTable, RETRY_MS } from "./peer_table.ts";
import { memoryTable, testIdentity } from "./_fakes.ts";

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

Deno.test("PeerTable: a learned address is not proven; a handshake there (source seed) proves it", async () => {
  await using t = await memoryTable(SELF);
  await t.upsert({ peerId: A, host: "127.0.0.2", ports: { chunk: 1 } }, "tracker");
  assert.equal(t.get(A)?.host, "127.0.0.2");
  assert.equal(t.getProven(A), undefined);
  assert.deepEqual(t.proven(), []);
  assert.deepEqual(t.unproven().map((p) => p.peerId), [A]);
  await t.upsert({ peerId: A, host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  assert.equal(t.getProven(A)?.host, "127.0.0.2");
  assert.deepEqual(t.unproven(), []);
});

Deno.test("PeerTable: a forged record or tracker row never moves a proven entry; a newer record is a candidate until proven there", async () => {
  const real = await testIdentity("real");
  await using t = await memoryTable(SELF);
  await t.learnRecord(await real.record("127.0.0.2", { chunk: 1 }, 1000));
  await t.upsert({ peerId: real.peerId, host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  // The tracker (or anything unsigned) says it moved: kept as a candidate only.
  await t.upsert({ peerId: real.peerId, host: "127.0.0.66", ports: { chunk: 9 } }, "tracker");
  assert.equal(t.getProven(real.peerId)?.host, "127.0.0.2");
  assert.equal(t.get(real.peerId)?.host, "127.0.0.2");
  assert.deepEqual(t.unproven().map((p) => p.host), ["127.0.0.66"]);
  // An older record is ignored; a newer one is a candidate, still not used.
  assert.equal(await t.learnRecord(await real.record("127.0.0.77", { chunk: 1 }, 999)), undefined);
  await t.learnRecord(await real.record("127.0.0.3", { chunk: 1 }, 2000));
  assert.equal(t.getProven(real.peerId)?.host, "127.0.0.2");
  assert.deepEqual(t.unproven().map((p) => p.host), ["127.0.0.3"]);
  // A handshake at the new address proves it: the entry moves.
  await t.prove({ peerId: real.peerId, host: "127.0.0.3", ports: { chunk: 1 } });
  assert.equal(t.getProven(real.peerId)?.host, "127.0.0.3");
  assert.equal(t.record(real.peerId)?.seq, 2000);
});

Deno.test("PeerTable holds at most its bound, evicting unproven peers first and never a proven one for a learned one", async () => {
  using kv = await Deno.openKv(":memory:");
  const t = await PeerTable.open(kv, SELF, { max: 3 });
  const id = (i: number) => i.toString(16).padStart(40, "0");
  await t.upsert({ peerId: id(1), host: "127.0.0.2", ports: { chunk: 1 } }, "seed", 100);
  await t.upsert({ peerId: id(2), host: "127.0.0.2", ports: { chunk: 2 } }, "tracker", 200);
  await t.upsert({ peerId: id(3), host: "127.0.0.2", ports: { chunk: 3 } }, "tracker", 300);
  // 2,000 injected entries: the table stays at 3, the proven peer stays.
  for (let i = 10; i < 2010; i++) {
    await t.upsert({ peerId: id(i), host: "127.0.0.9", ports: { chunk: 1 } }, "exchange", 400 + i);
  }
  assert.equal(t.list().length, 3);
  assert.ok(t.getProven(id(1)));
  await t.upsert({ peerId: id(5000), host: "127.0.0.2", ports: { chunk: 5 } }, "seed", 9000);
  await t.upsert({ peerId: id(5001), host: "127.0.0.2", ports: { chunk: 6 } }, "seed", 9001);
  await t.upsert({ peerId: id(5002), host: "127.0.0.2", ports: { chunk: 7 } }, "seed", 9002);
  assert.equal(
    await t.upsert({ peerId: id(6000), host: "127.0.0.9", ports: { chunk: 1 } }, "tracker"),
    undefined,
  );
  assert.deepEqual(t.list().map((p) => p.peerId).sort(), [id(5000), id(5001), id(5002)]);
  assert.equal((await kv.list({ prefix: ["known"] }).next()).done, false);
});

Deno.test("PeerTable: a peer that failed is not offered for dialing before its back-off", async () => {
  await using t = await memoryTable(SELF);
  await t.upsert({ peerId: A, host: "127.0.0.2", ports: { chunk: 1 } }, "seed", 0);
  await t.upsert({ peerId: B, host: "127.0.0.3", ports: { chunk: 1 } }, "tracker", 0);
  await t.failed(A, 1000);
  await t.failed(B, 1000);
  assert.deepEqual(t.proven(1000 + RETRY_MS - 1), []);
  assert.deepEqual(t.unproven(1000 + RETRY_MS - 1), []);
  assert.deepEqual(t.dialable(1000 + RETRY_MS).map((p) => p.peerId), [A, B]);
  await t.failed(A, 2000);
  assert.deepEqual(t.proven(2000 + RETRY_MS), [], "the wait doubles");
  await t.seen(A, 1, 3000);
  assert.deepEqual(t.proven(3000).map((p) => p.peerId), [A]);
});
