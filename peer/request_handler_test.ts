import assert from "node:assert/strict";
import { AGREEMENT_IDLE_MS, createRequestHandler, SERVED_CHUNKS } from "./request_handler.ts";
import { RemoteError } from "./connection.ts";
import {
  bytesStream,
  fakeLog,
  linkedPair,
  memoryTable,
  scriptedConn,
  tempStore,
  testIdentity,
} from "./_fakes.ts";
import { ForbiddenError } from "../proto/errors.ts";
import type { Message } from "../proto/messages.ts";
import { manifestFrom } from "../proto/manifest_body.ts";
import { bitfieldCount } from "../proto/bitfield.ts";

const MiB = 1024 * 1024;
const UNKNOWN = "ee".repeat(32);

/** Peer `a` serves with the handler over a store holding one 2.5 MiB payload; `b` asks. */
async function serving(
  opts: Pick<Parameters<typeof createRequestHandler>[0], "uploadLimit" | "selfRecord"> = {},
) {
  const store = await tempStore();
  const table = await memoryTable();
  const log = fakeLog();
  const { payloadId, manifest } = await store.importStream(bytesStream(2.5 * MiB), {
    name: "a.bin",
  });
  const abort = new AbortController();
  const handler = createRequestHandler({ store, table, log, signal: abort.signal, ...opts });
  const pair = await linkedPair({ a: handler });
  return {
    store,
    table,
    log,
    payloadId,
    manifest,
    ...pair,
    [Symbol.asyncDispose]: () => closeAll(abort, pair, table, store),
  };
}

/** Aborts, then disposes each in order: what every fixture here ends with. */
async function closeAll(abort: AbortController, ...parts: AsyncDisposable[]): Promise<void> {
  abort.abort();
  for (const part of parts) await part[Symbol.asyncDispose]();
}

Deno.test("request handler: HAVE? answers the bitfield, MANIFEST? the manifest and its name, PAYLOADS? the list", async () => {
  await using p = await serving();
  const have = await p.b.request({ type: "HAVE_REQ", header: { payloadId: p.payloadId } });
  assert.equal(have.header.chunkCount, 3);
  assert.equal(bitfieldCount(have.body, 3), 3);
  const res = await p.b.request({ type: "MANIFEST_REQ", header: { payloadId: p.payloadId } });
  assert.deepEqual(manifestFrom(res), { manifest: p.manifest, name: "a.bin" });
  assert.equal(p.log.of("query.have")[0].from, p.ids.b.peerId);
  assert.equal(p.log.of("query.manifest").length, 1);
  const list = await p.b.request({ type: "PAYLOADS_REQ", header: {} });
  assert.deepEqual(list.header.payloads, [{
    payloadId: p.payloadId,
    size: 2.5 * MiB,
    chunks: 3,
    held: 3,
    complete: true,
    name: "a.bin",
  }]);
  assert.equal(p.log.of("query.payloads")[0].from, p.ids.b.peerId);
});

Deno.test("request handler: GET_CHUNK sends a held chunk through the upload limit", async () => {
  const taken: number[] = [];
  await using p = await serving({
    uploadLimit: { take: (n) => (taken.push(n), Promise.resolve()) },
  });
  const res = await p.b.request({
    type: "GET_CHUNK",
    header: { payloadId: p.payloadId, index: 2 },
  });
  assert.equal(res.body.length, MiB / 2);
  assert.deepEqual(taken, [MiB / 2]);
  assert.deepEqual(p.log.of("chunk.sent").map((r) => r.bytes), [MiB / 2]);
});

Deno.test("request handler: GET_CHUNK reads into pooled buffers, gives each back once sent, and every answer stays intact", async () => {
  await using p = await serving();
  const idle = SERVED_CHUNKS.idle;
  // Concurrent and repeated, so buffers are reused while other answers are on the way.
  const indexes = [0, 1, 2, 0, 1, 2, 1, 0];
  const answers = await Promise.all(
    indexes.map((index) =>
      p.b.request({ type: "GET_CHUNK", header: { payloadId: p.payloadId, index } })
    ),
  );
  for (const [i, res] of answers.entries()) {
    assert.deepEqual(res.body, await p.store.readChunk(p.payloadId, indexes[i]));
  }
  assert.ok(SERVED_CHUNKS.idle > idle, "the buffers came back to the pool");
});

Deno.test("request handler: unknown payloads and chunks not held are refused with their codes", async () => {
  await using p = await serving();
  for (const type of ["HAVE_REQ", "MANIFEST_REQ"] as const) {
    await assert.rejects(
      p.b.request({ type, header: { payloadId: UNKNOWN } }),
      (err) => err instanceof RemoteError && err.code === "unknown_payload",
    );
  }
  await assert.rejects(
    p.b.request({ type: "GET_CHUNK", header: { payloadId: p.payloadId, index: 9 } }),
    (err) => err instanceof RemoteError && err.code === "not_held",
  );
});

/** A receiver `a` (its own store, the handler under test) and an offerer `b` holding a payload. */
async function offering(
  opts: { size?: number; maxBytes?: number; maxAgreements?: number; now?: () => number } = {},
) {
  const pusher = await tempStore();
  const { payloadId, manifest } = await pusher.importStream(
    bytesStream(opts.size ?? 1.5 * MiB, 9),
    {
      name: "p.bin",
    },
  );
  const log = fakeLog();
  const store = await tempStore(opts.maxBytes);
  const table = await memoryTable();
  const abort = new AbortController();
  const asked: string[] = [];
  const receiver = createRequestHandler({
    store,
    table,
    log,
    signal: abort.signal,
    ...(opts.maxAgreements ? { maxAgreements: opts.maxAgreements } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const serves = createRequestHandler({
    store: pusher,
    table,
    log: fakeLog(),
    signal: abort.signal,
  });
  const pair = await linkedPair({
    a: receiver,
    b: (msg, conn) => (asked.push(msg.type), serves(msg, conn)),
  });
  return {
    pusher,
    store,
    log,
    payloadId,
    manifest,
    asked,
    receiver,
    ...pair,
    [Symbol.asyncDispose]: () => closeAll(abort, pair, table, store, pusher),
  };
}

Deno.test("request handler: an accepted offer fetches the manifest from the offerer, then its pushes are stored", async () => {
  await using p = await offering();
  const { payloadId } = p;
  const offer = { size: p.manifest.size, chunkSize: p.manifest.chunkSize, name: "p.bin" };
  const have = await p.b.request({ type: "HAVE_REQ", header: { payloadId, offer } });
  assert.equal(bitfieldCount(have.body, 2), 0);
  assert.deepEqual(p.asked, ["MANIFEST_REQ"]);
  assert.equal(p.log.of("offer.accepted")[0].from, p.ids.b.peerId);
  const body = await p.pusher.readChunk(payloadId, 1);
  const ok = await p.b.request({ type: "PUT_CHUNK", header: { payloadId, index: 1 }, body });
  assert.equal(ok.type, "PUT_OK");
  assert.equal(p.store.payload(payloadId)?.name, "p.bin");
  assert.ok(p.store.has(payloadId, 1) && !p.store.has(payloadId, 0));
  assert.equal(p.log.of("chunk.received")[0].via, "push");
  const bad = new Uint8Array(MiB);
  await assert.rejects(
    p.b.request({ type: "PUT_CHUNK", header: { payloadId, index: 0 }, body: bad }),
    (err) => err instanceof RemoteError && err.code === "integrity",
  );
  assert.equal(p.log.of("chunk.rejected").length, 1);
});

Deno.test("request handler: an unsolicited PUT_CHUNK is refused with not_agreed and nothing is stored or asked", async () => {
  await using p = await offering();
  const body = await p.pusher.readChunk(p.payloadId, 0);
  await assert.rejects(
    p.b.request({ type: "PUT_CHUNK", header: { payloadId: p.payloadId, index: 0 }, body }),
    (err) => err instanceof RemoteError && err.code === "not_agreed",
  );
  assert.deepEqual(p.asked, []);
  assert.equal(p.store.getManifest(p.payloadId), undefined);
  assert.equal(p.store.usedBytes, 0);
  assert.equal(p.log.of("chunk.refused")[0].code, "not_agreed");
});

Deno.test("request handler: an offer of 1-byte chunks or over 64 GiB is refused from its header, before any manifest is asked", async () => {
  await using p = await offering();
  const before = Deno.memoryUsage().rss;
  // The attack of issue 11: 524,288 hashes with a chunk size of 1, then the same count of 1 MiB chunks.
  const offers = [
    { offer: { size: 524_288, chunkSize: 1 }, code: "bad_chunk_size" },
    { offer: { size: 524_288 * MiB, chunkSize: MiB }, code: "payload_too_large" },
  ];
  for (const { offer, code } of offers) {
    await assert.rejects(
      p.b.request({ type: "HAVE_REQ", header: { payloadId: UNKNOWN, offer } }),
      (err) => err instanceof RemoteError && err.code === code,
    );
  }
  assert.deepEqual(p.asked, []);
  assert.deepEqual(p.log.of("offer.refused").map((r) => r.code), offers.map((o) => o.code));
  assert.equal(p.store.list().length, 0);
  // Nothing was allocated for the hashes: memory stays within a few MiB.
  assert.ok(Deno.memoryUsage().rss - before < 64 * MiB);
});

Deno.test("request handler: an offer that does not fit the store's room is refused with store_full", async () => {
  await using p = await offering({ size: 3 * MiB, maxBytes: 2 * MiB });
  const offer = { size: p.manifest.size, chunkSize: p.manifest.chunkSize };
  await assert.rejects(
    p.b.request({ type: "HAVE_REQ", header: { payloadId: p.payloadId, offer } }),
    (err) => err instanceof RemoteError && err.code === "store_full",
  );
  assert.deepEqual(p.asked, []);
  assert.equal(p.log.of("offer.refused")[0].code, "store_full");
});

Deno.test("request handler: a push from another peer than the one whose offer was accepted is not_agreed", async () => {
  await using p = await offering();
  const offer = { size: p.manifest.size, chunkSize: p.manifest.chunkSize };
  await p.b.request({ type: "HAVE_REQ", header: { payloadId: p.payloadId, offer } });
  const body = await p.pusher.readChunk(p.payloadId, 0);
  const other = scriptedConn("c", () => ({ type: "PONG", header: {} }));
  const push = {
    type: "PUT_CHUNK",
    requestId: 1,
    header: { payloadId: p.payloadId, index: 0 },
    body,
  };
  await assert.rejects(
    Promise.resolve(p.receiver(push as Message, other)),
    (err) => err instanceof ForbiddenError && err.code === "not_agreed",
  );
  assert.equal(p.store.has(p.payloadId, 0), false);
});

Deno.test("request handler: PEERS? passes on its own record and those of live proven peers only, LOG? the log, PING a PONG", async () => {
  const me = await testIdentity("me");
  const own = await me.record("127.0.0.4", { chunk: 6 });
  await using p = await serving({ selfRecord: () => Promise.resolve(own) });
  const [live, dead, learned] = await Promise.all(
    ["live", "dead", "learned"].map((n) => testIdentity(n)),
  );
  const at = { live: "127.0.0.5", dead: "127.0.0.6", learned: "127.0.0.7" };
  for (const who of [live, dead, learned]) {
    const host = at[who.name as keyof typeof at];
    await p.table.learnRecord(await who.record(host, { chunk: 7 }));
    if (who !== learned) {
      await p.table.upsert({ peerId: who.peerId, host, ports: { chunk: 7 } }, "seed");
    }
  }
  await p.table.failed(dead.peerId);
  const peers = await p.b.request({ type: "PEERS_REQ", header: {} });
  assert.deepEqual(peers.header.peers.map((x) => x.peerId), [me.peerId, live.peerId]);
  assert.equal(peers.header.peers[1].signature, (p.table.record(live.peerId))?.signature);
  const log = await p.b.request({ type: "LOG_REQ", header: { type: "query.peers" } });
  assert.deepEqual(log.header.records.map((r) => r.type), ["query.peers"]);
  const pong = await p.b.request({ type: "PING", header: { ts: 5 } });
  assert.deepEqual(pong.header, { ts: 5 });
});

Deno.test("request handler: a push of a chunk held already is answered PUT_OK, even once the agreement ended", async () => {
  await using p = await offering();
  // A payload whose two chunks are the same bytes: storing one holds both.
  const twin = await p.pusher.importStream(ReadableStream.from([new Uint8Array(2 * MiB).fill(3)]));
  const offer = { size: 2 * MiB, chunkSize: MiB };
  await p.b.request({ type: "HAVE_REQ", header: { payloadId: twin.payloadId, offer } });
  const body = await p.pusher.readChunk(twin.payloadId, 0);
  await p.b.request({ type: "PUT_CHUNK", header: { payloadId: twin.payloadId, index: 0 }, body });
  assert.equal(p.store.payload(twin.payloadId)?.complete, true);
  const ok = await p.b.request({
    type: "PUT_CHUNK",
    header: { payloadId: twin.payloadId, index: 1 },
    body,
  });
  assert.equal(ok.type, "PUT_OK");
});

Deno.test("request handler: an offer past the open agreements' cap is refused with busy, and taken once one ends", async () => {
  let now = 1000;
  await using p = await offering({ maxAgreements: 1, now: () => now });
  const second = await p.pusher.importStream(bytesStream(MiB, 4));
  const offerOf = (size: number) => ({ size, chunkSize: MiB });
  const first = { payloadId: p.payloadId, offer: offerOf(p.manifest.size) };
  await p.b.request({ type: "HAVE_REQ", header: first });
  const again = { payloadId: second.payloadId, offer: offerOf(MiB) };
  await assert.rejects(
    p.b.request({ type: "HAVE_REQ", header: again }),
    (err) => err instanceof RemoteError && err.code === "busy",
  );
  assert.equal(p.log.of("offer.refused")[0].code, "busy");
  // The first agreement lapses after its idle time: its room and slot are free again,
  // and a late push under it is not taken.
  now += AGREEMENT_IDLE_MS;
  await p.b.request({ type: "HAVE_REQ", header: again });
  const body = await p.pusher.readChunk(p.payloadId, 0);
  await assert.rejects(
    p.b.request({ type: "PUT_CHUNK", header: { payloadId: p.payloadId, index: 0 }, body }),
    (err) => err instanceof RemoteError && err.code === "not_agreed",
  );
});
