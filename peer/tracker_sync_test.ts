import assert from "node:assert/strict";
import { NUMWANT, TrackerSync, type TrackerSyncDeps } from "./tracker_sync.ts";
import { Scheduler } from "./scheduler.ts";
import { TrackerError } from "./tracker_client.ts";
import { bytesStream, fakeLog, memoryTable, peerIdOf, tempStore } from "./_fakes.ts";
import { rankByRendezvous } from "./replication.ts";
import { loadIdentity } from "./identity.ts";
import { registrationBytes } from "../proto/tracker_auth.ts";
import { toBase64Url } from "../proto/ids.ts";
import type { PeerInfo, PeerList } from "../proto/tracker.ts";

const MiB = 1024 * 1024;
const SELF = peerIdOf("self");

/** A tracker in memory: it records calls, and `fail` makes every call fail. */
function fakeTracker(
  opts: { peers?: (string | PeerInfo)[]; stored?: string[]; lists?: PeerList[] } = {},
) {
  const calls: { method: string; args: unknown[] }[] = [];
  const state = { fail: undefined as Error | undefined };
  const call = <T>(method: string, args: unknown[], value: T): Promise<T> => {
    calls.push({ method, args });
    return state.fail ? Promise.reject(state.fail) : Promise.resolve(value);
  };
  const peerInfo = (id: string | PeerInfo) =>
    typeof id !== "string" ? id : ({
      peerId: id,
      host: "127.0.0.9",
      port: 5801,
      registeredAt: "",
      lastSeen: "",
      expiresAt: "",
    });
  const tracker: TrackerSyncDeps["tracker"] = {
    url: "http://127.0.0.1:1",
    register: (reg) =>
      call("register", [reg], { peer: peerInfo(SELF), created: true, ttlSeconds: 60 }),
    listPeers: (q) =>
      call("listPeers", [q], opts.lists?.shift() ?? { peers: (opts.peers ?? []).map(peerInfo) }),
    publish: (id, m) =>
      call("publish", [id], {
        payloadId: id,
        size: m.size,
        chunkSize: m.chunkSize,
        chunks: m.chunks.length,
        createdAt: "",
        stored: false,
      }),
    announce: (id, peerId) => call("announce", [id, peerId], { payloadId: id, peerId, count: 1 }),
    withdraw: (id, peerId) => call("withdraw", [id, peerId], { payloadId: id, peerId, count: 0 }),
    payloads: () =>
      call("payloads", [], {
        payloads: (opts.stored ?? []).map((id) => ({
          payloadId: id,
          size: 1,
          chunkSize: 1,
          chunks: 1,
          createdAt: "",
          stored: true,
        })),
        cursor: null,
      }),
    unregister: (id) => call("unregister", [id], undefined),
  };
  return { tracker, calls, state, of: (m: string) => calls.filter((c) => c.method === m) };
}

async function setup(t: ReturnType<typeof fakeTracker>, replicas = 0) {
  const store = await tempStore();
  const table = await memoryTable(SELF);
  const log = fakeLog();
  const scheduler = new Scheduler((err) => log.record("error", { message: String(err) }));
  const fetched: string[] = [];
  const sync = new TrackerSync({
    tracker: t.tracker,
    registration: { peerId: SELF, port: 5801, name: "self" },
    store,
    table,
    log,
    scheduler,
    replicas,
    fetch: (id) => (fetched.push(id), Promise.resolve()),
  });
  return {
    store,
    table,
    log,
    scheduler,
    sync,
    fetched,
    async [Symbol.asyncDispose]() {
      scheduler.stop();
      await table[Symbol.asyncDispose]();
      await store[Symbol.asyncDispose]();
    },
  };
}

/** A listed peer with a registration signed by a fresh identity, as a tracker passes it on. */
async function signedPeer(): Promise<PeerInfo> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-sync-" });
  const id = await loadIdentity(dir);
  await Deno.remove(dir, { recursive: true });
  const fields = { peerId: id.peerId, publicKey: id.publicKey, port: 5801, signedAt: Date.now() };
  const signature = toBase64Url(await id.sign(registrationBytes(fields)));
  return {
    peerId: id.peerId,
    host: "127.0.0.9",
    port: 5801,
    publicKey: id.publicKey,
    record: { ...fields, signature },
    registeredAt: "",
    lastSeen: "",
    expiresAt: "",
  };
}

Deno.test("TrackerSync.beat() registers, takes the tracker's peers and publishes then announces what is held", async () => {
  const other = await signedPeer();
  // A listing without the peer's own signature, or with one over other fields, is dropped.
  const forged = { ...await signedPeer(), host: "127.0.0.66" };
  forged.record = { ...forged.record!, host: "127.0.0.66" };
  const t = fakeTracker({ peers: [other, peerIdOf("unsigned"), forged] });
  await using s = await setup(t);
  const { payloadId } = await s.store.importStream(bytesStream(MiB));
  const next = await s.sync.beat();
  assert.equal(next, 20_000, "the heartbeat, under a third of the TTL");
  assert.deepEqual(t.of("register")[0].args, [{ peerId: SELF, port: 5801, name: "self" }]);
  assert.deepEqual(s.table.get(other.peerId)?.sources, ["tracker"]);
  assert.equal(s.table.get(peerIdOf("unsigned")), undefined);
  assert.equal(s.table.get(forged.peerId), undefined);
  assert.deepEqual(t.of("publish").map((c) => c.args[0]), [payloadId]);
  assert.deepEqual(t.of("announce").map((c) => c.args), [[payloadId, SELF]]);
  assert.equal(s.sync.state.ok, true);
  await s.sync.beat();
  assert.equal(t.of("publish").length, 1, "published once");
});

Deno.test("TrackerSync.beat() backs off 1, 2, 4 s while the tracker fails, and says why", async () => {
  const t = fakeTracker();
  await using s = await setup(t);
  t.state.fail = new Error("Tracker unreachable");
  assert.deepEqual([await s.sync.beat(), await s.sync.beat(), await s.sync.beat()], [
    1000,
    2000,
    4000,
  ]);
  assert.deepEqual(s.sync.state, {
    url: "http://127.0.0.1:1",
    ok: false,
    lastError: "Tracker unreachable",
  });
  t.state.fail = undefined;
  assert.equal(await s.sync.beat(), 20_000);
  assert.equal(s.log.of("tracker.register").length, 1);
});

Deno.test("TrackerSync.queue() coalesces a burst into one announcement per payload", async () => {
  const t = fakeTracker();
  await using s = await setup(t);
  const { payloadId } = await s.store.importStream(bytesStream(2 * MiB));
  const announced = Promise.withResolvers<void>();
  const announce = t.tracker.announce;
  t.tracker.announce = (...args) => announce(...args).finally(() => announced.resolve());
  for (let i = 0; i < 5; i++) s.sync.queue(payloadId);
  await announced.promise;
  assert.equal(t.of("announce").length, 1);
});

Deno.test("TrackerSync.flush() keeps a payload queued when the tracker forgot this peer", async () => {
  const t = fakeTracker();
  await using s = await setup(t);
  const { payloadId } = await s.store.importStream(bytesStream(MiB));
  await s.sync.beat();
  s.sync.queue(payloadId);
  t.tracker.announce = () => Promise.reject(new TrackerError("unknown_peer", "Unknown peer", 404));
  await s.sync.flush();
  assert.equal(s.sync.state.ok, false);
  assert.equal(s.log.of("tracker.error").at(-1)?.during, "announce");
  t.tracker.announce = (id, peerId) => Promise.resolve({ payloadId: id, peerId, count: 1 });
  await s.sync.flush();
  assert.equal(s.log.of("tracker.announce").length, 2);
});

Deno.test("TrackerSync.withdraw() tells the tracker of a removed payload, retries after a failure, and skips a payload held again", async () => {
  const t = fakeTracker();
  await using s = await setup(t);
  const { payloadId } = await s.store.importStream(bytesStream(MiB));
  await s.sync.beat();
  assert.deepEqual(t.of("announce").map((c) => c.args), [[payloadId, SELF]]);

  await s.store.remove(payloadId);
  t.state.fail = new TrackerError("tracker_unreachable", "Cannot reach the tracker", 0);
  s.sync.withdraw(payloadId);
  await s.sync.flush();
  assert.equal(s.log.of("tracker.error").at(-1)?.during, "withdraw");
  t.state.fail = undefined;
  await s.sync.flush();
  assert.deepEqual(t.of("withdraw").map((c) => c.args), [[payloadId, SELF], [payloadId, SELF]]);
  assert.deepEqual(s.log.of("tracker.withdraw").map((r) => r.payloadId), [payloadId]);

  // Removed, then stored again before the flush: only the announcement goes.
  await s.store.importStream(bytesStream(MiB));
  s.sync.withdraw(payloadId);
  s.sync.queue(payloadId);
  await s.sync.flush();
  assert.equal(t.of("withdraw").length, 2);
  assert.equal(t.of("announce").length, 2);
  // A payload the tracker never knew: nothing to drop, nothing kept queued.
  await s.store.remove(payloadId);
  t.tracker.withdraw = () =>
    Promise.reject(new TrackerError("unknown_payload", "Unknown payload", 404));
  s.sync.withdraw(payloadId);
  await s.sync.flush();
  assert.equal(s.log.of("tracker.error").length, 1);
});

Deno.test("TrackerSync spreads a tracker upload to this peer only when rendezvous ranks it among the replicas", async () => {
  const peers = ["p1", "p2", "p3"].map(peerIdOf);
  const ids = Array.from({ length: 12 }, (_, i) => i.toString(16).padStart(2, "0").repeat(32));
  const t = fakeTracker({ peers, stored: ids });
  await using s = await setup(t, 1);
  await s.sync.beat();
  await s.sync.stop();
  const mine = ids.filter((id) => rankByRendezvous(id, -1, [...peers, SELF], (p) => p)[0] === SELF);
  assert.deepEqual(s.fetched, mine);
  assert.deepEqual(t.of("unregister").map((c) => c.args), [[SELF]]);
});

Deno.test("TrackerSync.start() beats at once through the scheduler, and stop() leaves no timer", async () => {
  const t = fakeTracker();
  await using s = await setup(t);
  const beat = Promise.withResolvers<void>();
  const register = t.tracker.register;
  t.tracker.register = (r) => (beat.resolve(), register(r));
  s.sync.start();
  await beat.promise;
  s.scheduler.stop();
  assert.equal(s.scheduler.pending, 0);
});

Deno.test("TrackerSync.beat() asks for a sample first, then only the changes since the version it last saw", async () => {
  const [a, b, c] = [await signedPeer(), await signedPeer(), await signedPeer()];
  const ids = Array.from({ length: 8 }, (_, i) => i.toString(16).padStart(2, "0").repeat(32));
  const t = fakeTracker({
    stored: ids,
    lists: [
      { peers: [a, b], version: 10, kind: "sample" },
      { peers: [c], version: 12, kind: "changes", removed: [a.peerId] },
      // The tracker restarted: a sample starts the view anew.
      { peers: [b], version: 99, kind: "sample" },
    ],
  });
  await using s = await setup(t, 1);
  await s.sync.beat();
  await s.sync.beat();
  assert.deepEqual(t.of("listPeers").map((x) => x.args[0]), [
    { numwant: NUMWANT, since: undefined },
    { numwant: NUMWANT, since: 10 },
  ]);
  assert.deepEqual(s.table.get(c.peerId)?.sources, ["tracker"]);
  await s.sync.stop(); // waits for the spreading of the second beat
  s.fetched.length = 0;
  await s.sync.beat();
  assert.deepEqual(t.of("listPeers").at(-1)?.args[0], { numwant: NUMWANT, since: 12 });
  await s.sync.stop();
  // Spreading ranks the view at the last beat: b and this peer.
  const mine = ids.filter((id) => rankByRendezvous(id, -1, [b.peerId, SELF], (p) => p)[0] === SELF);
  assert.deepEqual(s.fetched, mine);
});
