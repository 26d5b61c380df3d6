import assert from "node:assert/strict";
import { NetworkCatalogue } from "./catalogue.ts";
import type { KnownPeer } from "./peer_table.ts";
import { bytesStream, memoryTable, peerIdOf, scriptedConn, tempStore } from "./_fakes.ts";
import { NotFoundError } from "../proto/errors.ts";
import type { WirePayload } from "../proto/messages.ts";

const unusedPool = {
  connect: () => Promise.reject(new Error("unused")),
  connectKnown: () => Promise.reject(new Error("unused")),
};

const MiB = 1024 * 1024;
const SELF = peerIdOf("self");
const OTHER = "ab".repeat(32);

Deno.test("NetworkCatalogue.networkPayloads() merges this peer's, live peers' and the tracker's payloads", async () => {
  await using store = await tempStore();
  await using table = await memoryTable(SELF);
  const { payloadId } = await store.importStream(bytesStream(MiB), { name: "mine.bin" });
  for (const name of ["p", "down", "stale"]) {
    await table.upsert(
      { peerId: peerIdOf(name), host: "127.0.0.2", ports: { chunk: 1 }, name },
      "seed",
    );
  }
  // Learned only (no handshake at its address yet): not asked.
  await table.upsert(
    { peerId: peerIdOf("learned"), host: "127.0.0.9", ports: { chunk: 1 }, name: "learned" },
    "tracker",
  );
  await table.failed(peerIdOf("stale"));
  const asked: string[] = [];
  const listed = (id: string, held: number): WirePayload => ({
    payloadId: id,
    size: MiB,
    chunks: 1,
    held,
    complete: held === 1,
  });
  const catalogue = new NetworkCatalogue({
    self: { peerId: SELF, name: "self" },
    store,
    table,
    tracker: {
      payloads: () =>
        Promise.resolve({
          payloads: [{
            payloadId: OTHER,
            size: MiB,
            chunkSize: MiB,
            chunks: 1,
            name: "other.bin",
            createdAt: "",
            stored: true,
          }],
          cursor: null,
        }),
    },
    pool: unusedPool,
    signal: new AbortController().signal,
    listPayloads: (peer: KnownPeer) => {
      asked.push(peer.name!);
      return peer.name === "down"
        ? Promise.reject(new Error("The peer at http://127.0.0.2:2 cannot be reached"))
        : Promise.resolve([listed(payloadId, 1), listed(OTHER, 0)]);
    },
  });
  const net = await catalogue.networkPayloads();
  assert.deepEqual(asked.sort(), ["down", "p"], "only live proven peers are asked");
  assert.deepEqual(net.errors, [{
    source: peerIdOf("down"),
    message: "The peer at http://127.0.0.2:2 cannot be reached",
  }]);
  assert.deepEqual(net.payloads.map((p) => [p.payloadId, p.name, p.holders.length]), [
    [payloadId, "mine.bin", 2],
    [OTHER, "other.bin", 1],
  ]);
  assert.deepEqual(net.payloads[0].holders.map((h) => [h.name, h.complete]), [["self", true], [
    "p",
    true,
  ]]);
});

Deno.test("NetworkCatalogue.remoteLog() asks a known peer with LOG? and refuses an unknown one", async () => {
  await using table = await memoryTable(SELF);
  await table.upsert({ peerId: peerIdOf("p"), host: "127.0.0.3", ports: { chunk: 7 } }, "seed");
  const conn = scriptedConn("p", () => ({
    type: "LOG",
    header: { records: [{ id: 4, ts: "2026-01-01T00:00:00.000Z", type: "peer.start" }] },
  }));
  const connected: string[] = [];
  const catalogue = new NetworkCatalogue({
    self: { peerId: SELF, name: "self" },
    store: { list: () => [] },
    table,
    pool: {
      connect: (host, port) => (connected.push(`${host}:${port}`), Promise.resolve(conn)),
      connectKnown: () => Promise.reject(new Error("unused")),
    },
    signal: new AbortController().signal,
  });
  const records = await catalogue.remoteLog(peerIdOf("p"), 3, 10, "peer");
  assert.deepEqual(records.map((r) => r.id), [4]);
  assert.deepEqual(connected, ["127.0.0.3:7"]);
  assert.deepEqual(conn.sent[0].header, { limit: 10, since: 3, type: "peer" });
  await assert.rejects(
    catalogue.remoteLog(peerIdOf("nobody")),
    (err) => err instanceof NotFoundError && err.code === "unknown_peer" && err.status === 404,
  );
});

Deno.test("NetworkCatalogue reads a peer's payloads over a link that proved its id (PAYLOADS?)", async () => {
  await using table = await memoryTable(SELF);
  for (const name of ["p", "moved"]) {
    await table.upsert(
      { peerId: peerIdOf(name), host: "127.0.0.1", ports: { chunk: 1 }, name },
      "seed",
    );
  }
  const payload = { payloadId: OTHER, size: 5, chunks: 1, held: 1, complete: true };
  const conns = new Map([
    [
      peerIdOf("p"),
      scriptedConn("p", () => ({ type: "PAYLOADS", header: { payloads: [payload] } })),
    ],
    // Another peer answers at "moved"'s address: nothing is asked of it.
    [
      peerIdOf("moved"),
      scriptedConn("other", () => ({ type: "PAYLOADS", header: { payloads: [] } })),
    ],
  ]);
  const catalogue = new NetworkCatalogue({
    self: { peerId: SELF, name: "self" },
    store: { list: () => [] },
    table,
    pool: {
      connect: () => Promise.reject(new Error("unused")),
      connectKnown: (p) => Promise.resolve(conns.get(p.peerId)),
    },
    signal: new AbortController().signal,
  });
  const net = await catalogue.networkPayloads();
  assert.deepEqual(net.payloads.map((p) => [p.payloadId, p.holders.map((h) => h.peerId)]), [[
    OTHER,
    [peerIdOf("p")],
  ]]);
  assert.deepEqual(net.errors.map((e) => e.source), [peerIdOf("moved")]);
  assert.deepEqual(conns.get(peerIdOf("moved"))!.sent, []);
});
