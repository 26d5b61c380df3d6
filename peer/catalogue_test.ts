import assert from "node:assert/strict";
import { NetworkCatalogue } from "./catalogue.ts";
import type { KnownPeer } from "./peer_table.ts";
import { bytesStream, memoryTable, peerIdOf, scriptedConn, tempStore } from "./_fakes.ts";
import { NotFoundError } from "../proto/errors.ts";
import type { PayloadsAnswer } from "../proto/control.ts";

const MiB = 1024 * 1024;
const SELF = peerIdOf("self");
const OTHER = "ab".repeat(32);

Deno.test("NetworkCatalogue.networkPayloads() merges this peer's, live peers' and the tracker's payloads", async () => {
  await using store = await tempStore();
  await using table = await memoryTable(SELF);
  const { payloadId } = await store.importStream(bytesStream(MiB), { name: "mine.bin" });
  for (const name of ["p", "down", "nohttp", "stale"]) {
    await table.upsert({
      peerId: peerIdOf(name),
      host: "127.0.0.2",
      ports: name === "nohttp" ? { chunk: 1 } : { chunk: 1, http: 2 },
      name,
    }, "seed");
  }
  await table.failed(peerIdOf("stale"));
  const asked: string[] = [];
  const listed = (id: string, held: number): PayloadsAnswer["payloads"][number] => ({
    payloadId: id,
    size: MiB,
    chunkSize: MiB,
    chunks: 1,
    held,
    complete: held === 1,
    addedAt: 0,
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
    pool: { connect: () => Promise.reject(new Error("unused")) },
    signal: new AbortController().signal,
    listPayloads: (peer: KnownPeer) => {
      asked.push(peer.name!);
      return peer.name === "down"
        ? Promise.reject(new Error("The peer at http://127.0.0.2:2 cannot be reached"))
        : Promise.resolve({ payloads: [listed(payloadId, 1), listed(OTHER, 0)] });
    },
  });
  const net = await catalogue.networkPayloads();
  assert.deepEqual(asked.sort(), ["down", "p"], "only live peers with a control port are asked");
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

Deno.test("NetworkCatalogue reads a peer's payloads from its control API over HTTP, parsed by the contract", async () => {
  await using table = await memoryTable(SELF);
  const listening = Promise.withResolvers<Deno.NetAddr>();
  await using _server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: listening.resolve,
  }, (req) =>
    new URL(req.url).pathname === "/_p2p/payloads"
      ? Response.json({
        payloads: [{
          payloadId: OTHER,
          size: 5,
          chunkSize: 5,
          chunks: 1,
          held: 1,
          complete: true,
          addedAt: 1,
        }],
      })
      : new Response("no", { status: 404 }));
  const { port } = await listening.promise;
  await table.upsert(
    { peerId: peerIdOf("p"), host: "127.0.0.1", ports: { chunk: 1, http: port }, name: "p" },
    "seed",
  );
  const catalogue = new NetworkCatalogue({
    self: { peerId: SELF, name: "self" },
    store: { list: () => [] },
    table,
    pool: { connect: () => Promise.reject(new Error("unused")) },
    signal: new AbortController().signal,
  });
  const net = await catalogue.networkPayloads();
  assert.deepEqual(net.errors, []);
  assert.deepEqual(net.payloads.map((p) => [p.payloadId, p.holders[0].peerId]), [[
    OTHER,
    peerIdOf("p"),
  ]]);
});
