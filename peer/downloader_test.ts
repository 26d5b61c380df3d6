import assert from "node:assert/strict";
import { download, DownloadError, type DownloadStore, type Source } from "./downloader.ts";
import { type Manifest, sha256Hex, verifyChunk } from "../proto/manifest.ts";
import { bitfieldFromIndices } from "../proto/bitfield.ts";

const CS = 1024;

async function payload(chunks: number): Promise<{ data: Uint8Array; manifest: Manifest }> {
  const data = crypto.getRandomValues(new Uint8Array(chunks * CS - 100));
  const hashes: string[] = [];
  for (let off = 0; off < data.length; off += CS) {
    hashes.push(await sha256Hex(data.subarray(off, off + CS)));
  }
  return { data, manifest: { size: data.length, chunkSize: CS, chunks: hashes } };
}

/** A store in memory that verifies like the real one. */
function memoryStore(manifest: Manifest, held: number[] = []): DownloadStore & {
  chunks: Map<number, Uint8Array>;
} {
  const chunks = new Map<number, Uint8Array>(held.map((i) => [i, new Uint8Array(0)]));
  return {
    chunks,
    missing: () => manifest.chunks.map((_, i) => i).filter((i) => !chunks.has(i)),
    async writeChunk(_id, index, bytes) {
      await verifyChunk(manifest, index, bytes);
      if (chunks.has(index)) return false;
      chunks.set(index, bytes);
      return true;
    },
  };
}

interface FakeOpts {
  holds?: number[];
  corrupt?: boolean;
  fail?: boolean;
  hang?: boolean;
  delayMs?: number;
}

function source(id: string, data: Uint8Array, m: Manifest, o: FakeOpts = {}) {
  const n = m.chunks.length;
  const requested: number[] = [];
  const s: Source & { requested: number[] } = {
    id,
    requested,
    have: bitfieldFromIndices(n, o.holds ?? [...Array(n).keys()]),
    async fetch(index, signal) {
      requested.push(index);
      if (o.fail) throw new Error("connection closed");
      if (o.hang) {
        await new Promise((_, reject) =>
          signal.addEventListener("abort", () => reject(signal.reason))
        );
      }
      if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      const bytes = data.slice(index * CS, (index + 1) * CS);
      if (o.corrupt) bytes[0] ^= 0xff;
      return bytes;
    },
  };
  return s;
}

function assembled(store: ReturnType<typeof memoryStore>, n: number): Uint8Array {
  const parts = [...Array(n).keys()].map((i) => store.chunks.get(i)!);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

Deno.test("download() takes chunks from several sources and stores them verified", async () => {
  const { data, manifest } = await payload(40);
  const store = memoryStore(manifest);
  const sources = ["a", "b", "c"].map((id) => source(id, data, manifest, { delayMs: 1 }));
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve(sources),
    pipeline: 4,
  });
  assert.deepEqual(assembled(store, 40), data);
  assert.ok(Object.keys(res.chunksBySource).length >= 2, JSON.stringify(res.chunksBySource));
  assert.equal(Object.values(res.chunksBySource).reduce((a, b) => a + b, 0), 40);
  assert.equal(res.bytes, data.length);
});

Deno.test("download() drops a source whose chunks fail verification and still finishes", async () => {
  const { data, manifest } = await payload(20);
  const store = memoryStore(manifest);
  const liar = source("liar", data, manifest, { corrupt: true });
  const honest = source("honest", data, manifest, { delayMs: 2 });
  const dropped: string[] = [];
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([liar, honest]),
    onDrop: (id) => dropped.push(id),
  });
  assert.deepEqual(assembled(store, 20), data);
  assert.deepEqual(dropped, ["liar"]);
  assert.match(res.dropped[0].reason, /fail verification/);
  assert.equal(res.chunksBySource.liar, undefined);
  // Dropped for lying: never asked again, even after sources are looked up again.
  assert.ok(liar.requested.length <= 8 + 2, `liar asked ${liar.requested.length} times`);
});

Deno.test("download() replaces dead and silent sources", async () => {
  const { data, manifest } = await payload(12);
  const store = memoryStore(manifest);
  const dead = source("dead", data, manifest, { fail: true });
  const silent = source("silent", data, manifest, { hang: true });
  const slowButAlive = source("alive", data, manifest, { delayMs: 20 });
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([dead, silent, slowButAlive]),
    // One request at a time: the silent source times out three times (90 ms)
    // while the live one needs about 240 ms for the twelve chunks.
    pipeline: 1,
    chunkTimeoutMs: 30,
  });
  assert.deepEqual(assembled(store, 12), data);
  assert.deepEqual(Object.keys(res.chunksBySource), ["alive"]);
  assert.deepEqual(res.dropped.map((d) => d.source).sort(), ["dead", "silent"]);
});

Deno.test("download() resumes: chunks already held are not fetched again", async () => {
  const { data, manifest } = await payload(10);
  const store = memoryStore(manifest);
  for (let i = 0; i < 6; i++) store.chunks.set(i, data.slice(i * CS, (i + 1) * CS));
  const s = source("s", data, manifest);
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([s]),
  });
  assert.deepEqual([...s.requested].sort((a, b) => a - b), [6, 7, 8, 9]);
  assert.equal(res.resumed, 6);
  assert.deepEqual(assembled(store, 10), data);
});

Deno.test("download() asks for the rarest chunk first", async () => {
  const { data, manifest } = await payload(8);
  const store = memoryStore(manifest);
  const everything = source("all", data, manifest);
  const most = source("most", data, manifest, { holds: [0, 1, 2, 3, 4, 6, 7] });
  await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([everything, most]),
    pipeline: 1,
  });
  assert.equal(everything.requested[0], 5);
});

Deno.test("download() fails with DownloadError naming chunks nobody holds", async () => {
  const { data, manifest } = await payload(4);
  const store = memoryStore(manifest);
  const partial = source("partial", data, manifest, { holds: [0, 1] });
  let lookups = 0;
  await assert.rejects(
    download({
      payloadId: "p",
      manifest,
      store,
      findSources: () => {
        lookups++;
        return Promise.resolve([partial]);
      },
      maxRefresh: 1,
    }),
    (err: Error) => err instanceof DownloadError && /chunks 2,3/.test(err.message),
  );
  assert.equal(lookups, 2);
  assert.equal(store.chunks.size, 2);
});

Deno.test("download() stops when its signal is aborted", async () => {
  const { data, manifest } = await payload(4);
  const store = memoryStore(manifest);
  const ctrl = new AbortController();
  const silent = source("silent", data, manifest, { hang: true });
  const run = download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([silent]),
    signal: ctrl.signal,
  });
  setTimeout(() => ctrl.abort(new Error("stopped by test")), 20);
  await assert.rejects(run, /stopped by test/);
});

Deno.test("download() fetches positions with identical bytes once and stores every one", async () => {
  // 12 chunks of which 0, 3, 6 and 9 are the same bytes, and 1 and 10 too.
  const unique = crypto.getRandomValues(new Uint8Array(8 * CS));
  const layout = [0, 1, 2, 0, 3, 4, 0, 5, 6, 0, 1, 7];
  const data = new Uint8Array(layout.length * CS);
  layout.forEach((u, i) => data.set(unique.subarray(u * CS, (u + 1) * CS), i * CS));
  const hashes: string[] = [];
  for (let i = 0; i < layout.length; i++) {
    hashes.push(await sha256Hex(data.subarray(i * CS, (i + 1) * CS)));
  }
  const manifest: Manifest = { size: data.length, chunkSize: CS, chunks: hashes };
  const store = memoryStore(manifest);
  const src = source("a", data, manifest, { delayMs: 2 });
  const stored: number[] = [];
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () => Promise.resolve([src]),
    pipeline: 1,
    onChunk: (i) => stored.push(i),
  });
  assert.deepEqual(assembled(store, layout.length), data);
  assert.equal(src.requested.length, 8, `requested ${src.requested}`);
  assert.deepEqual(stored.sort((x, y) => x - y), [...layout.keys()]);
  assert.equal(res.chunksBySource.a, 8);
});

Deno.test("download() releases every fetched array once, after the store is done with it", async () => {
  const { data, manifest } = await payload(30);
  const store = memoryStore(manifest);
  /** Arrays handed to the store whose write has not finished. */
  const writing = new Set<Uint8Array>();
  const write = store.writeChunk;
  store.writeChunk = async (id, index, bytes) => {
    writing.add(bytes);
    try {
      await new Promise((r) => setTimeout(r, 1));
      // Kept as a copy: a released array may be written over by its source.
      return await write(id, index, bytes.slice());
    } finally {
      writing.delete(bytes);
    }
  };
  const fetched = new Map<Uint8Array, number>();
  const released = new Map<Uint8Array, number>();
  const releasing = (s: Source): Source => ({
    ...s,
    fetch: async (index, signal) => {
      const bytes = await s.fetch(index, signal);
      fetched.set(bytes, (fetched.get(bytes) ?? 0) + 1);
      return bytes;
    },
    release: (bytes) => {
      assert.ok(!writing.has(bytes), "released while the store was writing it");
      released.set(bytes, (released.get(bytes) ?? 0) + 1);
    },
  });
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    findSources: () =>
      Promise.resolve([
        releasing(source("liar", data, manifest, { corrupt: true })),
        releasing(source("fast", data, manifest, { delayMs: 1 })),
        releasing(source("slow", data, manifest, { delayMs: 5 })),
      ]),
  });
  assert.deepEqual(assembled(store, 30), data);
  assert.deepEqual(res.dropped.map((d) => d.source), ["liar"]);
  // These fake sources answer even after an endgame abort: let the last ones land.
  await new Promise((r) => setTimeout(r, 30));
  // Stored chunks, bad chunks and endgame losers alike.
  assert.ok(fetched.size >= 30);
  assert.equal(released.size, fetched.size);
  for (const bytes of fetched.keys()) assert.equal(released.get(bytes), 1);
});

Deno.test("download() looks sources up again while it runs: a new holder joins, a known one's new chunks are used", async () => {
  const { data, manifest } = await payload(12);
  const store = memoryStore(manifest);
  // The first holder is slow; the second holds nothing at first, then everything.
  const slow = source("slow", data, manifest, { delayMs: 40 });
  const late = source("late", data, manifest, { holds: [] });
  const joined = source("joined", data, manifest);
  let lookups = 0;
  const res = await download({
    payloadId: "p",
    manifest,
    store,
    pipeline: 1,
    refreshMs: 10,
    findSources: () => {
      lookups++;
      if (lookups === 1) return Promise.resolve([slow, late]);
      // The same "late", answering afresh: it holds everything now.
      return Promise.resolve([slow, source("late", data, manifest), joined]);
    },
  });
  assert.deepEqual(assembled(store, 12), data);
  assert.ok(lookups >= 2, "looked up again while chunks were coming");
  assert.ok((res.chunksBySource["late"] ?? 0) > 0, "a known source's new chunks were used");
  assert.ok((res.chunksBySource["joined"] ?? 0) > 0, "a new holder joined");
});

Deno.test("download() with refreshMs 0 looks sources up only at start", async () => {
  const { data, manifest } = await payload(6);
  const store = memoryStore(manifest);
  let lookups = 0;
  await download({
    payloadId: "p",
    manifest,
    store,
    refreshMs: 0,
    findSources: () => (lookups++, Promise.resolve([source("a", data, manifest, { delayMs: 5 })])),
  });
  assert.equal(lookups, 1);
  assert.equal(store.chunks.size, 6);
});
