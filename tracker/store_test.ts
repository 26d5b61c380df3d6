import assert from "node:assert/strict";
import { ActivityLog } from "./activity.ts";
import { type PeerRow, TrackerStore } from "./store.ts";

async function twoWriters(): Promise<
  { stores: TrackerStore[]; kvs: Deno.Kv[]; dispose(): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-store-test-" });
  const path = `${dir}/tracker.kv`;
  const kvs = [await Deno.openKv(path), await Deno.openKv(path)];
  const stores: TrackerStore[] = [];
  for (const kv of kvs) {
    const store = new TrackerStore(kv, await ActivityLog.open(kv));
    await store.load();
    stores.push(store);
  }
  return {
    stores,
    kvs,
    async dispose() {
      for (const kv of kvs) kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function rowsIn(kv: Deno.Kv): Promise<string[]> {
  const rows: string[] = [];
  for await (const e of kv.list<PeerRow>({ prefix: ["peer"] })) {
    rows.push(`${e.value.host}:${e.value.port}=${e.value.peerId}`);
  }
  return rows.sort();
}

Deno.test("TrackerStore.registerPeer() with a stale index reloads and keeps (host, port) unique", async () => {
  const { stores: [a, b], kvs, dispose } = await twoWriters();
  try {
    const ttl = 60_000;
    const first = await a.registerPeer({ host: "127.0.0.2", port: 7000 }, ttl);
    await b.load();
    // Behind b's back, the address changes hands twice.
    assert.equal(await a.removePeer(first.row.peerId, "peer.remove"), true);
    const second = await a.registerPeer({ host: "127.0.0.2", port: 7000 }, ttl);
    assert.notEqual(second.row.peerId, first.row.peerId);
    // b still believes in `first`; its commit fails its checks, it reloads, and
    // refreshes the entry that really holds the address.
    const viaB = await b.registerPeer({ host: "127.0.0.2", port: 7000 }, ttl);
    assert.equal(viaB.row.peerId, second.row.peerId);
    assert.equal(viaB.created, false);
    // A takeover through b is seen by a's next write to that address.
    const takeover = await b.registerPeer(
      { host: "127.0.0.2", port: 7000, peerId: "1".repeat(40) },
      ttl,
    );
    const viaA = await a.registerPeer({ host: "127.0.0.2", port: 7000 }, ttl);
    assert.equal(viaA.row.peerId, takeover.row.peerId);
    assert.deepEqual(await rowsIn(kvs[0]), [`127.0.0.2:7000=${"1".repeat(40)}`]);
  } finally {
    await dispose();
  }
});

Deno.test("TrackerStore.removePeer() with a stale index reloads before deciding", async () => {
  const { stores: [a, b], kvs, dispose } = await twoWriters();
  try {
    const p = await a.registerPeer({ host: "127.0.0.2", port: 7001 }, 60_000);
    await b.load();
    await a.registerPeer({ host: "127.0.0.4", port: 7001, peerId: p.row.peerId }, 60_000);
    // b's index still has the old address; removal must delete the new one.
    assert.equal(await b.removePeer(p.row.peerId, "peer.remove"), true);
    assert.deepEqual(await rowsIn(kvs[0]), []);
    const addrs: unknown[] = [];
    for await (const e of kvs[0].list({ prefix: ["addr"] })) addrs.push(e.key);
    assert.deepEqual(addrs, []);
  } finally {
    await dispose();
  }
});

Deno.test("the tracker's JSON-lines activity file rotates by size and keepFiles old files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-tracker-log-" });
  try {
    const kv = await Deno.openKv(`${dir}/tracker.kv`);
    const path = `${dir}/tracker-activity.jsonl`;
    const log = await ActivityLog.open(kv, { path, maxFileBytes: 1000, keepFiles: 2 });
    // Records are written in batches, and a batch is never split across files.
    for (let i = 0; i < 65; i++) {
      log.record("payload.query", { i, pad: "x".repeat(40) });
      if (i % 10 === 9) await log.flush();
    }
    await log.close();
    kv.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".jsonl"));
    assert.deepEqual(names.sort(), [
      "tracker-activity.1.jsonl",
      "tracker-activity.2.jsonl",
      "tracker-activity.jsonl",
    ]);
    // The newest records are in the current file, whole lines, in order.
    const ids = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l).id);
    assert.equal(ids.at(-1), 65);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
