import assert from "node:assert/strict";
import { Downloads } from "./downloads.ts";
import type { Progress, Source } from "./downloader.ts";
import { fakeLog } from "./_fakes.ts";
import { TooLargeError } from "../proto/errors.ts";
import { bitfieldFromIndices } from "../proto/bitfield.ts";
import { type Manifest, sha256Hex, verifyChunk } from "../proto/manifest.ts";

const CS = 1024;
const ID = "cd".repeat(32);

/** Four chunks, a store in memory and one source that waits for `gate` before it answers. */
async function setup(room?: number, linking = false) {
  const data = crypto.getRandomValues(new Uint8Array(4 * CS));
  const chunks = Array.from({ length: 4 }, (_, i) => data.subarray(i * CS, (i + 1) * CS));
  const manifest: Manifest = {
    size: data.length,
    chunkSize: CS,
    chunks: await Promise.all(chunks.map((c) => sha256Hex(c))),
  };
  const stored = new Map<number, Uint8Array>();
  const gate = Promise.withResolvers<void>();
  let manifests = 0;
  const source: Source = {
    id: "peer-a",
    have: bitfieldFromIndices(4, [0, 1, 2, 3]),
    fetch: async (i) => (await gate.promise, chunks[i]),
  };
  const log = fakeLog();
  const downloads = new Downloads({
    store: {
      ...(room === undefined ? {} : { room: () => room }),
      linking: () => linking,
      missing: () => [0, 1, 2, 3].filter((i) => !stored.has(i)),
      async writeChunk(_id, i, bytes) {
        await verifyChunk(manifest, i, bytes);
        stored.set(i, bytes);
        return true;
      },
    },
    sourcing: {
      manifest: () => (manifests++, Promise.resolve(manifest)),
      sources: () => Promise.resolve([source]),
    },
    log,
    signal: new AbortController().signal,
  });
  return { downloads, log, stored, gate, manifests: () => manifests };
}

Deno.test("Downloads.get() runs one download per payload and tells every caller its progress", async () => {
  const s = await setup();
  const first: Progress[] = [];
  const second: Progress[] = [];
  const a = s.downloads.get(ID, (p) => first.push(p));
  const b = s.downloads.get(ID, (p) => second.push(p));
  assert.equal(a, b);
  assert.deepEqual(s.downloads.running(), [ID]);
  s.gate.resolve();
  const res = await a;
  assert.equal(res.bytes, 4 * CS);
  assert.equal(s.manifests(), 1);
  assert.equal(s.stored.size, 4);
  assert.equal(first.at(-1)?.done, 4);
  assert.equal(second.at(-1)?.done, 4);
  await s.downloads.settled();
  assert.deepEqual(s.downloads.running(), []);
  assert.deepEqual(s.log.records.map((r) => r.type).filter((t) => t.startsWith("download")), [
    "download.start",
    "download.done",
  ]);
  assert.equal(s.log.of("chunk.received").length, 4);
});

Deno.test("Downloads.get() rejects when the manifest cannot be found, and the next call starts anew", async () => {
  const log = fakeLog();
  const downloads = new Downloads({
    store: { missing: () => [], writeChunk: () => Promise.resolve(false) },
    sourcing: {
      manifest: () => Promise.reject(new Error("Cannot find the manifest")),
      sources: () => Promise.resolve([]),
    },
    log,
    signal: new AbortController().signal,
  });
  await assert.rejects(downloads.get(ID), /Cannot find the manifest/);
  assert.deepEqual(downloads.running(), []);
  await assert.rejects(downloads.get(ID), /Cannot find the manifest/);
});

Deno.test("Downloads.get() refuses with store_full before fetching a chunk when the store has no room for it", async () => {
  const s = await setup(3 * CS);
  await assert.rejects(
    s.downloads.get(ID),
    (e) => e instanceof TooLargeError && e.code === "store_full",
  );
  assert.equal(s.stored.size, 0);
  assert.equal(s.log.of("download.refused")[0].need, 4 * CS);
});

Deno.test("Downloads.get() does not ask for room when the payload goes to a linked file (get -o on this machine)", async () => {
  const s = await setup(0, true);
  s.gate.resolve();
  const res = await s.downloads.get(ID);
  assert.equal(res.bytes, 4 * CS);
  assert.equal(s.log.of("download.refused").length, 0);
});

Deno.test("Downloads.get() cancels a run when its only watcher's signal aborts, but not while a caller without a signal waits", async () => {
  const s = await setup();
  const gone = new AbortController();
  const watched = s.downloads.get(ID, Object.assign(() => {}, { signal: gone.signal }));
  gone.abort(new Error("the client went away"));
  await assert.rejects(watched, /the client went away/);
  s.gate.resolve();
  await s.downloads.settled();
  assert.deepEqual(s.downloads.running(), []);
  assert.deepEqual(s.log.records.map((r) => r.type).filter((t) => t.startsWith("download")), [
    "download.cancel",
  ]);

  const k = await setup();
  const kept = k.downloads.get(ID);
  const leaving = new AbortController();
  const watcher = k.downloads.get(ID, Object.assign(() => {}, { signal: leaving.signal }));
  leaving.abort(new Error("gone"));
  await assert.rejects(watcher, /gone/);
  k.gate.resolve();
  assert.equal((await kept).bytes, 4 * CS);
  assert.equal(k.log.of("download.cancel").length, 0);
});
