import assert from "node:assert/strict";
import { rankByRendezvous, rendezvous, Replication, SPOT_CHECKS } from "./replication.ts";
import type { KnownPeer, PeerTable } from "./peer_table.ts";
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

/**
 * A peer that agrees to every offer and stores what it is pushed (or, `lying`, only
 * says so; or keeps all but chunk `drops`).
 */
function holder(
  name: string,
  opts: { refusePush?: boolean; lying?: boolean; drops?: number } = {},
) {
  const held = new Map<number, Uint8Array>();
  const conn = scriptedConn(name, (msg) => {
    const h = msg.header as { payloadId: string; index: number };
    switch (msg.type) {
      case "HAVE_REQ":
        return {
          type: "HAVE",
          header: { payloadId: h.payloadId, chunkCount: 4 },
          body: new Uint8Array(1),
        };
      case "PUT_CHUNK":
        if (opts.refusePush) {
          return { type: "ERROR", header: { code: "store_full", message: "Full" } };
        }
        if (!opts.lying && h.index !== opts.drops) held.set(h.index, msg.body!);
        return { type: "PUT_OK", header: h };
      case "GET_CHUNK":
        return { type: "CHUNK", header: h, body: held.get(h.index) ?? new Uint8Array(MiB) };
      default:
        return { type: "ERROR", header: { code: "unsupported", message: msg.type } };
    }
  });
  return Object.assign(conn, { held });
}

/** Seeds the table with `names` and makes each one's link with `make`, by peerId. */
async function holders(
  table: Pick<PeerTable, "upsert">,
  names: string[],
  make: (name: string) => ReturnType<typeof holder>,
): Promise<Map<string, ReturnType<typeof holder>>> {
  for (const n of names) {
    await table.upsert({ peerId: peerIdOf(n), host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  }
  return new Map(names.map((n) => [peerIdOf(n), make(n)]));
}

Deno.test("Replication.put() offers the payload, pushes each chunk to the top-ranked peers and spot-checks them", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const log = fakeLog();
  // q agrees but refuses every push: its chunks go to the next in rank.
  const names = ["p", "q", "r"];
  const conns = await holders(table, names, (n) => holder(n, { refusePush: n === "q" }));
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
  const sent = conns.get(peerIdOf("p"))!.sent.map((m) => m.type);
  assert.deepEqual(sent, [
    "HAVE_REQ",
    ...Array(4).fill("PUT_CHUNK"),
    ...Array(SPOT_CHECKS).fill("GET_CHUNK"),
  ]);
  // Each of the four chunks it holds was checked once.
  const checked = conns.get(peerIdOf("p"))!.sent.filter((m) => m.type === "GET_CHUNK");
  assert.deepEqual(checked.map((m) => m.header.index).sort(), [0, 1, 2, 3]);
  assert.deepEqual(conns.get(peerIdOf("p"))!.sent[0].header.offer, {
    size: 3.5 * MiB,
    chunkSize: MiB,
    name: "r.bin",
  });
});

Deno.test("Replication.replicate() with one copy asked puts each chunk on its top-ranked peer only", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const { payloadId } = await store.importStream(bytesStream(4 * MiB, 3));
  const names = ["p", "q", "r"];
  for (const n of names) {
    await table.upsert({ peerId: peerIdOf(n), host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  }
  const conns = new Map(names.map((n) => [peerIdOf(n), holder(n)]));
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
    const holders = [...conns.entries()].filter(([, c]) => c.held.has(i)).map(([id]) => id);
    assert.deepEqual(holders, [top], `chunk ${i}`);
  }
});

Deno.test("Replication: forty made-up ids on one link that answer PUT_OK without storing capture no replica", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const log = fakeLog();
  const liar = holder("liar", { lying: true });
  const honest = holder("honest");
  // Forty entries point at the liar's link; one of them even carries the liar's own id.
  const fakes = Array.from({ length: 39 }, (_, i) => peerIdOf(`fake${i}`));
  for (const id of [...fakes, peerIdOf("liar"), peerIdOf("honest")]) {
    await table.upsert({ peerId: id, host: "127.0.0.2", ports: { chunk: 1 } }, "seed");
  }
  const replication = new Replication({
    store,
    table,
    log,
    pool: {
      connectKnown: (p: KnownPeer) =>
        Promise.resolve(p.peerId === peerIdOf("honest") ? honest : liar),
    },
    replicas: 16,
    announce: () => {},
  });
  const res = await replication.put(bytesStream(4 * MiB, 5));
  assert.deepEqual(Object.keys(res.replicas), [peerIdOf("honest")]);
  assert.equal(res.replicas[peerIdOf("honest")], 4);
  assert.equal(res.underReplicated, 4, "one real copy of each chunk is not sixteen");
  assert.equal(log.of("replicate.mismatch").length, 39);
  assert.equal(log.of("replicate.spot_check_failed")[0].peerId, peerIdOf("liar"));
  // The liar's link was offered the payload once, not forty times.
  assert.equal(liar.sent.filter((m) => m.type === "HAVE_REQ").length, 1);
});

Deno.test("Replication: a target that kept three of its four chunks fails the spot-check and counts for none", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const log = fakeLog();
  const conns = await holders(
    table,
    ["keeper", "forgetful"],
    (n) => holder(n, { drops: n === "keeper" ? -1 : 2 }),
  );
  const replication = new Replication({
    store,
    table,
    log,
    pool: { connectKnown: (p: KnownPeer) => Promise.resolve(conns.get(p.peerId)) },
    replicas: 2,
    announce: () => {},
  });
  const res = await replication.put(bytesStream(4 * MiB, 3));
  assert.deepEqual(Object.keys(res.replicas), [peerIdOf("keeper")]);
  assert.equal(res.underReplicated, 4);
  const failed = log.of("replicate.spot_check_failed");
  assert.deepEqual(failed.map((r) => [r.peerId, r.index, r.discounted]), [
    [peerIdOf("forgetful"), 2, 4],
  ]);
});

Deno.test("Replication: ten silent addresses cost one bounded wait for all, then a back-off", async () => {
  await using store = await tempStore();
  await using table = await memoryTable();
  const log = fakeLog();
  const silent = Array.from({ length: 10 }, (_, i) => peerIdOf(`silent${i}`));
  for (const id of silent) {
    await table.upsert({ peerId: id, host: "127.0.0.2", ports: { chunk: 1 } }, "exchange");
  }
  await table.upsert({ peerId: peerIdOf("p"), host: "127.0.0.3", ports: { chunk: 1 } }, "seed");
  const p = holder("p");
  const dialed: string[] = [];
  const hanging: PromiseWithResolvers<undefined>[] = [];
  const replication = new Replication({
    store,
    table,
    log,
    pool: {
      // Like the pool: a silent address is counted as failed once its dial gives up.
      connectKnown: (k: KnownPeer) => {
        dialed.push(k.peerId);
        if (k.peerId === peerIdOf("p")) return Promise.resolve(p);
        const wait = Promise.withResolvers<undefined>();
        hanging.push(wait);
        return wait.promise.then(async () => (await table.failed(k.peerId), undefined));
      },
    },
    replicas: 1,
    announce: () => {},
    offerDeadlineMs: 50,
  });
  const first = await replication.put(bytesStream(5, 1));
  assert.equal(first.replicas[peerIdOf("p")], 1);
  assert.equal(dialed.length, 11, "every address dialed once, at the same time");
  assert.equal(log.of("replicate.fail").length, 10);
  for (const h of hanging) h.resolve(undefined);
  await Promise.all(hanging.map((h) => h.promise));
  await new Promise((r) => setTimeout(r, 0));
  dialed.length = 0;
  const second = await replication.put(bytesStream(7, 2));
  assert.equal(second.underReplicated, 0);
  assert.deepEqual(dialed, [peerIdOf("p")], "the silent ones wait out their back-off");
});
