import assert from "node:assert/strict";
import { Sourcing, type SourcingDeps } from "./sourcing.ts";
import type { PeerConnection } from "./connection.ts";
import type { KnownPeer } from "./peer_table.ts";
import { bytesStream, fakeLog, memoryTable, peerIdOf, scriptedConn, tempStore } from "./_fakes.ts";
import { bitfieldFromIndices } from "../proto/bitfield.ts";
import { NotFoundError } from "../proto/errors.ts";
import { manifestMessage } from "../proto/manifest_body.ts";
import type { Manifest } from "../proto/manifest.ts";

const MiB = 1024 * 1024;

/** A payload made in a scratch store: its id, manifest and chunk bytes. */
async function aPayload(size = 3 * MiB) {
  await using scratch = await tempStore();
  const { payloadId, manifest } = await scratch.importStream(bytesStream(size, 5), {
    name: "s.bin",
  });
  const chunks = await Promise.all(manifest.chunks.map((_, i) => scratch.readChunk(payloadId, i)));
  return { payloadId, manifest, chunks };
}

/** A connection to `name` holding the chunk positions `held` of the payload, serving MANIFEST? too. */
function holder(name: string, p: { payloadId: string; manifest: Manifest }, held: number[]) {
  const n = p.manifest.chunks.length;
  return scriptedConn(name, (msg) => {
    if (msg.type === "MANIFEST_REQ") return manifestMessage(0, p.payloadId, p.manifest, "s.bin");
    if (msg.type === "HAVE_REQ") {
      return {
        type: "HAVE",
        header: { payloadId: p.payloadId, chunkCount: n },
        body: bitfieldFromIndices(n, held),
      };
    }
    return { type: "ERROR", header: { code: "unsupported", message: "No" } };
  });
}

async function setup(
  conns: Record<string, PeerConnection>,
  extra: Partial<SourcingDeps> = {},
) {
  const store = await tempStore();
  const table = await memoryTable(peerIdOf("self"));
  const log = fakeLog();
  for (const [i, name] of Object.keys(conns).entries()) {
    await table.upsert(
      { peerId: peerIdOf(name), host: `127.0.0.${i + 2}`, ports: { chunk: 1 } },
      "seed",
    );
  }
  const byHost = (host: string) =>
    Object.values(conns)[Number(host.split(".")[3]) - 2] as PeerConnection | undefined;
  const sourcing = new Sourcing({
    self: { peerId: peerIdOf("self"), name: "self", address: "127.0.0.1:5801" },
    store,
    table,
    log,
    pool: {
      connect: (host) => {
        const c = byHost(host);
        return c ? Promise.resolve(c) : Promise.reject(new Error(`Cannot reach '${host}'`));
      },
      connectKnown: (p: KnownPeer) => Promise.resolve(byHost(p.host)),
    },
    ...extra,
  });
  return {
    store,
    table,
    log,
    sourcing,
    async [Symbol.asyncDispose]() {
      await table[Symbol.asyncDispose]();
      await store[Symbol.asyncDispose]();
    },
  };
}

Deno.test("Sourcing.manifest() asks known peers when it has none, verifies and keeps it", async () => {
  const p = await aPayload();
  const a = holder("a", p, [0]);
  await using s = await setup({ a });
  assert.deepEqual(await s.sourcing.manifest(p.payloadId), p.manifest);
  assert.equal(s.store.payload(p.payloadId)?.name, "s.bin");
  await s.sourcing.manifest(p.payloadId);
  assert.equal(a.sent.length, 1, "the second answer comes from the store");
});

Deno.test("Sourcing.manifest() takes the tracker's first and throws NotFoundError when nobody has it", async () => {
  const p = await aPayload();
  await using s = await setup({}, {
    tracker: {
      url: "http://127.0.0.1:1",
      manifest: (id) =>
        id === p.payloadId
          ? Promise.resolve({ payloadId: id, ...p.manifest, name: "t.bin" })
          : Promise.reject(new Error("Tracker answered 404")),
      holders: () => Promise.reject(new Error("unused")),
      chunk: () => Promise.reject(new Error("unused")),
    },
  });
  assert.deepEqual(await s.sourcing.manifest(p.payloadId), p.manifest);
  assert.equal(s.store.payload(p.payloadId)?.name, "t.bin");
  await assert.rejects(
    s.sourcing.manifest("00".repeat(32)),
    (err) =>
      err instanceof NotFoundError && err.code === "unknown_payload" &&
      /tracker: Tracker answered 404/.test(err.message),
  );
});

Deno.test("Sourcing.sources() lists peers that hold some chunks, and the tracker when it keeps them", async () => {
  const p = await aPayload();
  const holders = { a: holder("a", p, [0, 1]), b: holder("b", p, []), c: holder("c", p, [2]) };
  await using s = await setup(holders, {
    tracker: {
      url: "http://127.0.0.1:1",
      manifest: () => Promise.reject(new Error("unused")),
      holders: (payloadId) =>
        Promise.resolve({ payloadId, chunks: 3, tracker: { holds: true }, peers: [] }),
      chunk: (_id, index) => Promise.resolve(p.chunks[index]),
    },
  });
  const sources = await s.sourcing.sources(p.payloadId, p.manifest);
  assert.deepEqual(
    sources.map((x) => x.id).sort(),
    [peerIdOf("a"), peerIdOf("c"), "tracker"].sort(),
  );
  const tracker = sources.find((x) => x.id === "tracker")!;
  assert.deepEqual(await tracker.fetch(1, new AbortController().signal), p.chunks[1]);
});

Deno.test("Sourcing.sources() leaves an address it could not reach out of the next asks", async () => {
  const p = await aPayload();
  // "gone" is in the table but its connection fails; "a" answers.
  await using s = await setup({ a: holder("a", p, [0]) });
  await s.table.upsert(
    { peerId: peerIdOf("gone"), host: "127.0.0.9", ports: { chunk: 1 } },
    "seed",
  );
  for (let i = 0; i < 3; i++) {
    const sources = await s.sourcing.sources(p.payloadId, p.manifest);
    assert.deepEqual(sources.map((x) => x.id), [peerIdOf("a")]);
  }
  const fails = s.log.of("conn.fail");
  assert.equal(fails.length, 1, "asked once, then left out");
  assert.equal(fails[0].address, "127.0.0.9:1");
});

Deno.test("Sourcing.where() lists this peer first, then each holder with its bitfield", async () => {
  const p = await aPayload();
  await using s = await setup({ a: holder("a", p, [0, 2]) });
  const where = await s.sourcing.where(p.payloadId);
  assert.equal(where.chunks, 3);
  assert.deepEqual(where.rows.map((r) => [r.peerId, r.count, r.via, r.address]), [
    [peerIdOf("self"), 0, "self", "127.0.0.1:5801"],
    [peerIdOf("a"), 2, "HAVE?", "127.0.0.2:1"],
  ]);
  assert.equal(where.rows[1].have, "a0");
});
