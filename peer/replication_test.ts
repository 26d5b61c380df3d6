import assert from "node:assert/strict";
import { rankByRendezvous, rendezvous, Replication } from "./replication.ts";
import type { KnownPeer } from "./peer_table.ts";
import { bytesStream, fakeLog, memoryTable, peerIdOf, scriptedConn, tempStore } from "./_fakes.ts";
import type { PutProgress } from "../proto/control.ts";

const MiB = 1024 * 1024;
const ID = "ab".repeat(32);

Deno.test("rendezvous() is a stable 32-bit score that differs by chunk and by peer", () => {
  const s = rendezvous(ID, 3, "peer-a");
  assert.equal(s, rendezvous(ID, 3, "peer-a"));
  assert.ok(Number.isInteger(s) && s >= 0 && s < 2 ** 32);
  assert.notEqual(s, rendezvous(ID, 4, "peer-a"));
  assert.notEqual(s, rendezvous(ID, 3, "peer-b"));
});

Deno.test("rankByRendezvous() spreads first places evenly and keeps ranks when a peer leaves", () => {
  const peers = ["a", "b", "c", "d"];
  const firsts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    const ranked = rankByRendezvous(ID, i, peers, (p) => p);
    firsts.set(ranked[0], (firsts.get(ranked[0]) ?? 0) + 1);
    // Without one peer, the others keep their order.
    const without = rankByRendezvous(ID, i, peers.filter((p) => p !== "c"), (p) => p);
    assert.deepEqual(without, ranked.filter((p) => p !== "c"));
  }
  for (const p of peers) {
    const n = firsts.get(p) ?? 0;
    assert.ok(n > 800 && n < 1200, `peer ${p} ranked first ${n} times of 4000`);
  }
});

Deno.test("Replication.put() stores, announces and pushes each chunk to the top-ranked peers", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const log = fakeLog();
  const names = ["p", "q", "r"];
  for (const n of names) {
    await table.upsert({ peerId: peerIdOf(n), host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  }
  // q refuses every push: its chunks go to the next in rank.
  const conns = new Map(names.map((n) => [
    peerIdOf(n),
    scriptedConn(
      n,
      (msg) =>
        n === "q"
          ? { type: "ERROR", header: { code: "full", message: "Disk full" } }
          : { type: "PUT_OK", header: msg.header },
    ),
  ]));
  const announced: string[] = [];
  const replication = new Replication({
    store,
    table,
    log,
    pool: { connectKnown: (p: KnownPeer) => Promise.resolve(conns.get(p.peerId)) },
    replicas: 2,
    announce: (id) => announced.push(id),
  });
  const events: PutProgress[] = [];
  const res = await replication.put(bytesStream(3.5 * MiB), "r.bin", (e) => events.push(e));
  assert.equal(res.chunks, 4);
  assert.ok(res.created);
  assert.deepEqual(announced, [res.payloadId]);
  assert.equal(res.underReplicated, 0, "q's chunks went to the next in rank");
  assert.equal(res.replicas[peerIdOf("p")], 4);
  assert.equal(res.replicas[peerIdOf("r")], 4);
  assert.equal(res.replicas[peerIdOf("q")], undefined);
  assert.equal(events[0].type, "stored");
  assert.equal(events.filter((e) => e.type === "replicated").length, 4);
  assert.equal(log.of("chunk.pushed").length, 8);
  assert.ok(log.of("replicate.fail").length > 0);
  assert.deepEqual(conns.get(peerIdOf("p"))!.sent.map((m) => m.type), Array(4).fill("PUT_CHUNK"));
});

Deno.test("Replication.replicate() with one copy asked puts each chunk on its top-ranked peer only", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const { payloadId } = await store.importStream(bytesStream(4 * MiB, 3));
  const names = ["p", "q", "r"];
  for (const n of names) {
    await table.upsert({ peerId: peerIdOf(n), host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  }
  const conns = new Map(names.map((n) => [
    peerIdOf(n),
    scriptedConn(n, (msg) => ({ type: "PUT_OK", header: msg.header })),
  ]));
  const replication = new Replication({
    store,
    table,
    log: fakeLog(),
    pool: { connectKnown: (p: KnownPeer) => Promise.resolve(conns.get(p.peerId)) },
    replicas: 0,
    announce: () => {},
  });
  const res = await replication.replicate(payloadId, 1);
  assert.equal(res.underReplicated, 0);
  for (let i = 0; i < 4; i++) {
    const top = rankByRendezvous(payloadId, i, names.map(peerIdOf), (p) => p)[0];
    const holder = [...conns.entries()].find(([, c]) => c.sent.some((m) => m.header.index === i))
      ?.[0];
    assert.equal(holder, top, `chunk ${i}`);
  }
});
