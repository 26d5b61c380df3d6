import assert from "node:assert/strict";
import { createRequestHandler } from "./request_handler.ts";
import { RemoteError } from "./connection.ts";
import { bytesStream, fakeLog, linkedPair, memoryTable, peerIdOf, tempStore } from "./_fakes.ts";
import { manifestFrom } from "../proto/manifest_body.ts";
import { bitfieldCount } from "../proto/bitfield.ts";

const MiB = 1024 * 1024;
const UNKNOWN = "ee".repeat(32);

/** Peer `a` serves with the handler over a store holding one 2.5 MiB payload; `b` asks. */
async function serving(opts: { uploadLimit?: { take(n: number): Promise<void> } } = {}) {
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
    async [Symbol.asyncDispose]() {
      abort.abort();
      await pair[Symbol.asyncDispose]();
      await table[Symbol.asyncDispose]();
      await store[Symbol.asyncDispose]();
    },
  };
}

Deno.test("request handler: HAVE? answers the bitfield, MANIFEST? the manifest and its name", async () => {
  await using p = await serving();
  const have = await p.b.request({ type: "HAVE_REQ", header: { payloadId: p.payloadId } });
  assert.equal(have.header.chunkCount, 3);
  assert.equal(bitfieldCount(have.body, 3), 3);
  const res = await p.b.request({ type: "MANIFEST_REQ", header: { payloadId: p.payloadId } });
  assert.deepEqual(manifestFrom(res), { manifest: p.manifest, name: "a.bin" });
  assert.equal(p.log.of("query.have")[0].from, peerIdOf("b"));
  assert.equal(p.log.of("query.manifest").length, 1);
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

Deno.test("request handler: PUT_CHUNK of a new payload learns the manifest from the pusher, then stores", async () => {
  await using pusher = await tempStore();
  const { payloadId } = await pusher.importStream(bytesStream(1.5 * MiB, 9), { name: "p.bin" });
  const log = fakeLog();
  await using store = await tempStore();
  await using table = await memoryTable();
  const pushed = createRequestHandler({ store, table, log, signal: new AbortController().signal });
  const serves = createRequestHandler({
    store: pusher,
    table,
    log: fakeLog(),
    signal: new AbortController().signal,
  });
  await using p = await linkedPair({ a: pushed, b: serves });
  const body = await pusher.readChunk(payloadId, 1);
  const ok = await p.b.request({ type: "PUT_CHUNK", header: { payloadId, index: 1 }, body });
  assert.equal(ok.type, "PUT_OK");
  assert.equal(store.payload(payloadId)?.name, "p.bin");
  assert.ok(store.has(payloadId, 1) && !store.has(payloadId, 0));
  assert.equal(log.of("chunk.received")[0].via, "push");
  const bad = new Uint8Array(MiB);
  await assert.rejects(
    p.b.request({ type: "PUT_CHUNK", header: { payloadId, index: 0 }, body: bad }),
    (err) => err instanceof RemoteError && err.code === "integrity",
  );
  assert.equal(log.of("chunk.rejected").length, 1);
});

Deno.test("request handler: PEERS? passes on live known peers only, LOG? the log, PING a PONG", async () => {
  await using p = await serving();
  await p.table.upsert(
    { peerId: peerIdOf("live"), host: "127.0.0.5", ports: { chunk: 7 } },
    "seed",
  );
  await p.table.upsert(
    { peerId: peerIdOf("dead"), host: "127.0.0.6", ports: { chunk: 8 } },
    "seed",
  );
  await p.table.failed(peerIdOf("dead"));
  const peers = await p.b.request({ type: "PEERS_REQ", header: {} });
  assert.deepEqual(peers.header.peers.map((x) => x.peerId), [peerIdOf("live")]);
  const log = await p.b.request({ type: "LOG_REQ", header: { type: "query.peers" } });
  assert.deepEqual(log.header.records.map((r) => r.type), ["query.peers"]);
  const pong = await p.b.request({ type: "PING", header: { ts: 5 } });
  assert.deepEqual(pong.header, { ts: 5 });
});
