import { concatBytes } from "../proto/bytes.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ChunkStore } from "./chunk_store.ts";
import { IntegrityError, TooLargeError } from "../proto/errors.ts";
import { CHUNK_SIZE, type Manifest, payloadIdOf, sha256Hex } from "../proto/manifest.ts";

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (xorshift32), fast enough for MiBs. */
function pseudoRandom(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** The manifest of `bytes`, computed without the store or `Chunker`. */
async function manifestOf(bytes: Uint8Array): Promise<Manifest> {
  const chunks: string[] = [];
  for (let off = 0; off < bytes.length; off += CHUNK_SIZE) {
    chunks.push(await sha256Hex(bytes.subarray(off, off + CHUNK_SIZE)));
  }
  return { size: bytes.length, chunkSize: CHUNK_SIZE, chunks };
}

function chunkOf(bytes: Uint8Array, index: number): Uint8Array {
  return bytes.slice(index * CHUNK_SIZE, (index + 1) * CHUNK_SIZE);
}

/** A stream that yields `bytes` in pieces of `piece` bytes. */
function streamOf(bytes: Uint8Array, piece = 64 * 1024): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(off, off + piece));
      off += piece;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Paths of the files under `root`, recursively, relative to it, sorted. */
async function filesUnder(root: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(root, path));
    else out.push(path);
  }
  return out.sort();
}

/** Runs `fn` with a store in a fresh temporary directory, removed afterwards. */
async function withStore(
  fn: (store: ChunkStore, dir: string, warnings: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "p2p-chunk-store-" });
  const warnings: string[] = [];
  const store = await ChunkStore.open(dir, { warn: (m) => warnings.push(m) });
  try {
    await fn(store, dir, warnings);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("importStream() gives the payloadId of an independently computed manifest and exportStream() returns the same bytes", async () => {
  await withStore(async (store, dir) => {
    const bytes = pseudoRandom(2.5 * MiB, 1);
    const expected = await manifestOf(bytes);
    const { payloadId, manifest, created } = await store.importStream(streamOf(bytes), {
      name: "a.bin",
    });
    assert.equal(created, true);
    assert.deepEqual(manifest, expected);
    assert.equal(payloadId, await payloadIdOf(expected));
    assert.deepEqual(store.getManifest(payloadId), expected);
    assert.deepEqual(store.payload(payloadId), {
      payloadId,
      size: bytes.length,
      chunkSize: CHUNK_SIZE,
      chunks: 3,
      held: 3,
      complete: true,
      name: "a.bin",
      addedAt: store.payload(payloadId)!.addedAt,
      pinned: false,
    });
    assert.deepEqual(store.missing(payloadId), []);
    assert.deepEqual(await collect(store.exportStream(payloadId)), bytes);
    assert.deepEqual(await filesUnder(`${dir}/manifests`), [`${payloadId}.json`]);
    // One file: the payload's bytes, then one trailer byte of 3 bits held.
    assert.deepEqual(await filesUnder(`${dir}/data`), [payloadId]);
    assert.equal((await Deno.stat(`${dir}/data/${payloadId}`)).size, bytes.length + 1);
    assert.deepEqual(await filesUnder(`${dir}/tmp`), []);
    const again = await store.importStream(streamOf(bytes, 1000 * 1000));
    assert.equal(again.payloadId, payloadId);
    assert.equal(again.created, false);
  });
});

Deno.test("importStream() refuses an empty payload with RangeError", async () => {
  await withStore(async (store, dir) => {
    await assert.rejects(store.importStream(streamOf(new Uint8Array(0))), {
      name: "RangeError",
      message: "Cannot import an empty payload",
    });
    await assert.rejects(
      store.importStream((async function* () {
        yield new Uint8Array(0);
      })()),
      RangeError,
    );
    assert.deepEqual(store.list(), []);
    assert.deepEqual(await filesUnder(dir), []);
  });
});

Deno.test("ChunkStore.open() on the same directory finds the manifests and held chunks of an earlier instance", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-chunk-store-" });
  try {
    const full = pseudoRandom(2 * MiB + 5, 2);
    const partial = pseudoRandom(3 * MiB, 3);
    const partialManifest = await manifestOf(partial);
    const partialId = await payloadIdOf(partialManifest);
    let fullId: string;
    {
      const store = await ChunkStore.open(dir);
      fullId = (await store.importStream(streamOf(full), { name: "full" })).payloadId;
      assert.equal(await store.addManifest(partialId, partialManifest), true);
      assert.equal(await store.writeChunk(partialId, 1, chunkOf(partial, 1)), true);
      store.close();
    }
    const store = await ChunkStore.open(dir);
    assert.deepEqual(store.list().map((p) => [p.payloadId, p.held, p.complete, p.name]), [
      [partialId, 1, false, undefined],
      [fullId, 3, true, "full"],
    ]);
    assert.deepEqual(store.getManifest(partialId), partialManifest);
    assert.deepEqual(store.have(partialId), new Uint8Array([0b0100_0000]));
    assert.deepEqual(store.missing(partialId), [0, 2]);
    assert.deepEqual(await store.readChunk(partialId, 1), chunkOf(partial, 1));
    assert.deepEqual(await collect(store.exportStream(fullId)), full);
    store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeChunk() builds up have(), missing() and complete for a payload whose manifest is known", async () => {
  await withStore(async (store) => {
    const bytes = pseudoRandom(2 * MiB + 100, 4);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    assert.equal(await store.addManifest(id, manifest, { name: "p" }), true);
    assert.deepEqual(store.have(id), new Uint8Array([0]));
    assert.deepEqual(store.missing(id), [0, 1, 2]);
    assert.equal(store.payload(id)?.complete, false);

    assert.equal(await store.writeChunk(id, 2, chunkOf(bytes, 2)), true);
    assert.equal(store.has(id, 2), true);
    assert.equal(store.has(id, 0), false);
    assert.deepEqual(store.have(id), new Uint8Array([0b0010_0000]));
    assert.deepEqual(store.missing(id), [0, 1]);
    assert.equal(await store.writeChunk(id, 2, chunkOf(bytes, 2)), false, "already held");

    assert.equal(await store.writeChunk(id, 0, chunkOf(bytes, 0)), true);
    assert.equal(await store.writeChunk(id, 1, chunkOf(bytes, 1)), true);
    assert.deepEqual(store.missing(id), []);
    assert.deepEqual(store.have(id), new Uint8Array([0b1110_0000]));
    assert.equal(store.payload(id)?.held, 3);
    assert.equal(store.payload(id)?.complete, true);
    assert.deepEqual(await collect(store.exportStream(id)), bytes);

    const copy = store.have(id);
    copy[0] = 0;
    assert.deepEqual(store.have(id), new Uint8Array([0b1110_0000]), "have() returns a copy");
  });
});

Deno.test("writeChunk() rejects bytes that do not match the manifest with IntegrityError and writes nothing", async () => {
  await withStore(async (store, dir) => {
    const bytes = pseudoRandom(MiB + 10, 5);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    await store.addManifest(id, manifest);
    const wrong = chunkOf(bytes, 0);
    wrong[123] ^= 1;
    await assert.rejects(store.writeChunk(id, 0, wrong), IntegrityError);
    await assert.rejects(store.writeChunk(id, 1, chunkOf(bytes, 0)), IntegrityError);
    await assert.rejects(store.writeChunk(id, 1, new Uint8Array(9)), IntegrityError);
    assert.deepEqual(store.missing(id), [0, 1]);
    assert.deepEqual(await filesUnder(`${dir}/data`), []);
    assert.deepEqual(await filesUnder(`${dir}/tmp`), []);

    await assert.rejects(store.writeChunk(id, 2, new Uint8Array(1)), RangeError);
    await assert.rejects(store.writeChunk("0".repeat(64), 0, chunkOf(bytes, 0)), RangeError);
  });
});

Deno.test("addManifest() refuses a manifest that does not hash to the payloadId and returns false when it is known", async () => {
  await withStore(async (store, dir) => {
    const manifest = await manifestOf(pseudoRandom(100, 6));
    const id = await payloadIdOf(manifest);
    await assert.rejects(store.addManifest("f".repeat(64), manifest), IntegrityError);
    await assert.rejects(store.addManifest(id.toUpperCase(), manifest), TypeError);
    await assert.rejects(
      store.addManifest(id, { ...manifest, chunks: [manifest.chunks[0].toUpperCase()] }),
      TypeError,
    );
    const empty: Manifest = { size: 0, chunkSize: CHUNK_SIZE, chunks: [] };
    await assert.rejects(store.addManifest(await payloadIdOf(empty), empty), RangeError);
    assert.deepEqual(await filesUnder(`${dir}/manifests`), []);

    const [a, b] = await Promise.all([
      store.addManifest(id, manifest),
      store.addManifest(id, manifest),
    ]);
    assert.deepEqual([a, b].sort(), [false, true]);
    assert.equal(await store.addManifest(id, manifest), false);
    assert.deepEqual(await filesUnder(`${dir}/manifests`), [`${id}.json`]);
    const onDisk = JSON.parse(await Deno.readTextFile(`${dir}/manifests/${id}.json`));
    assert.deepEqual(
      { size: onDisk.size, chunkSize: onDisk.chunkSize, chunks: onDisk.chunks },
      manifest,
    );
    assert.equal(typeof onDisk.addedAt, "number");
    assert.equal(store.payload("0".repeat(64)), undefined);
    assert.throws(() => store.have("0".repeat(64)), RangeError);
  });
});

Deno.test("ChunkStore.open() drops a corrupt or mismatched manifest, a payload file of the wrong size or without a manifest, and empties tmp/", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-chunk-store-" });
  try {
    const a = pseudoRandom(MiB + 1, 7);
    const b = pseudoRandom(2 * MiB + 1, 8);
    let aId: string;
    let bId: string;
    {
      const store = await ChunkStore.open(dir);
      aId = (await store.importStream(streamOf(a))).payloadId;
      bId = (await store.importStream(streamOf(b))).payloadId;
      store.close();
    }
    const bManifest = await manifestOf(b);
    await Deno.writeTextFile(`${dir}/manifests/${aId}.json`, '{"size": 3, "chunks": [');
    await Deno.copyFile(`${dir}/manifests/${bId}.json`, `${dir}/manifests/${"0".repeat(64)}.json`);
    assert.equal(bManifest.chunks.length, 3);
    await Deno.truncate(`${dir}/data/${bId}`, 1000);
    await Deno.writeTextFile(`${dir}/tmp/stale-123`, "half a chunk");

    const warnings: string[] = [];
    const store = await ChunkStore.open(dir, { warn: (m) => warnings.push(m) });
    try {
      assert.deepEqual(store.list().map((p) => p.payloadId), [bId]);
      assert.equal(store.getManifest(aId), undefined);
      // A payload file of the wrong size is dropped whole; a's, without a manifest, too.
      assert.deepEqual(store.missing(bId), [0, 1, 2]);
      assert.equal(store.payload(bId)?.complete, false);
      assert.equal(warnings.length, 4);
      assert.deepEqual(await filesUnder(`${dir}/manifests`), [`${bId}.json`]);
      assert.deepEqual(await filesUnder(`${dir}/tmp`), []);
      assert.deepEqual(await filesUnder(`${dir}/data`), []);
      await assert.rejects(store.readChunk(bId, 1), RangeError);
      await assert.rejects(collect(store.exportStream(bId)), IntegrityError);

      for (const i of [0, 1, 2]) assert.equal(await store.writeChunk(bId, i, chunkOf(b, i)), true);
      assert.deepEqual(await collect(store.exportStream(bId)), b);
    } finally {
      store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exportStream() errors with IntegrityError when a chunk found at start-up is corrupt", async () => {
  await withStore(async (first, dir) => {
    const bytes = pseudoRandom(2.5 * MiB, 9);
    const { payloadId, manifest } = await first.importStream(streamOf(bytes));
    assert.equal(manifest.chunks.length, 3);
    const path = `${dir}/data/${payloadId}`;
    const damaged = chunkOf(bytes, 1);
    damaged[500] ^= 0xff;
    {
      using file = await Deno.open(path, { write: true });
      await file.seek(CHUNK_SIZE + 500, Deno.SeekMode.Start);
      await file.write(damaged.subarray(500, 501));
    }
    // Verified on arrival by this process: exported without hashing again.
    assert.equal((await collect(first.exportStream(payloadId))).length, bytes.length);
    first.close();

    // A new process did not verify it: serving does not re-hash (receivers verify), exporting does.
    const store = await ChunkStore.open(dir);
    assert.deepEqual(await store.readChunk(payloadId, 1), damaged);
    await assert.rejects(collect(store.exportStream(payloadId)), IntegrityError);
    assert.deepEqual(store.missing(payloadId), [1], "the damaged chunk is no longer held");
    const raw = await Deno.readFile(path);
    assert.equal(raw[raw.length - 1], 0b1010_0000, "nor is it on disk");

    assert.equal(await store.writeChunk(payloadId, 1, chunkOf(bytes, 1)), true);
    assert.deepEqual(await collect(store.exportStream(payloadId)), bytes);
  });
});

Deno.test("readChunk() returns a held chunk and throws RangeError for one not held", async () => {
  await withStore(async (store) => {
    const bytes = pseudoRandom(MiB + 7, 10);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    await store.addManifest(id, manifest);
    await store.writeChunk(id, 1, chunkOf(bytes, 1));
    assert.deepEqual(await store.readChunk(id, 1), chunkOf(bytes, 1));
    await assert.rejects(store.readChunk(id, 0), RangeError);
    await assert.rejects(store.readChunk(id, 5), RangeError);
    await assert.rejects(store.readChunk("0".repeat(64), 0), RangeError);
    await assert.rejects(collect(store.exportStream(id)), IntegrityError);
    assert.throws(() => store.exportStream("0".repeat(64)), RangeError);
  });
});

Deno.test("a chunk two payloads share is written to both, and storing it for one holds it for both", async () => {
  await withStore(async (store, dir) => {
    const shared = pseudoRandom(MiB, 11);
    const tailA = pseudoRandom(MiB, 12);
    const tailB = pseudoRandom(300, 13);
    const a = concatBytes(shared, tailA);
    const b = concatBytes(shared, tailB);
    const aManifest = await manifestOf(a);
    const bManifest = await manifestOf(b);
    const aId = await payloadIdOf(aManifest);
    const bId = await payloadIdOf(bManifest);
    const seen: string[] = [];
    store.onChunk((id, i) => seen.push(`${id === aId ? "a" : "b"}${i}`));

    await store.addManifest(aId, aManifest);
    await store.addManifest(bId, bManifest);
    assert.equal(await store.writeChunk(aId, 0, shared), true);
    assert.deepEqual(seen, ["a0", "b0"]);
    assert.equal(store.has(bId, 0), true);
    assert.equal(await store.writeChunk(bId, 0, shared), false);
    assert.equal(await store.writeChunk(aId, 1, tailA), true);
    assert.equal(await store.writeChunk(bId, 1, tailB), true);
    assert.deepEqual(await filesUnder(`${dir}/data`), [aId, bId].sort());
    assert.equal(store.usedBytes, a.length + b.length, "each payload's file has its copy");
    assert.deepEqual(await collect(store.exportStream(aId)), a);
    assert.deepEqual(await collect(store.exportStream(bId)), b);

    // A manifest added later copies the shared chunk from a payload that holds it.
    const c = concatBytes(shared, new Uint8Array([1, 2, 3]));
    const cManifest = await manifestOf(c);
    const cId = await payloadIdOf(cManifest);
    seen.length = 0;
    await store.addManifest(cId, cManifest);
    assert.deepEqual(store.missing(cId), [1]);
    assert.equal(seen.length, 1);
    assert.deepEqual(await store.readChunk(cId, 0), shared);
  });
});

Deno.test("onChunk() fires once per newly stored chunk, also for concurrent writes of the same chunk", async () => {
  await withStore(async (store, dir) => {
    const bytes = pseudoRandom(2 * MiB + 1, 14);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    const seen: number[] = [];
    const unsubscribe = store.onChunk((pid, i) => {
      assert.equal(pid, id);
      seen.push(i);
    });
    await store.addManifest(id, manifest);
    const results = await Promise.all([
      store.writeChunk(id, 0, chunkOf(bytes, 0)),
      store.writeChunk(id, 0, chunkOf(bytes, 0)),
      store.writeChunk(id, 0, chunkOf(bytes, 0)),
    ]);
    assert.deepEqual(results.sort(), [false, false, true]);
    assert.deepEqual(seen, [0]);
    assert.equal(store.payload(id)?.held, 1);
    assert.deepEqual(await filesUnder(`${dir}/data`), [id]);
    assert.deepEqual(await filesUnder(`${dir}/tmp`), []);

    await store.writeChunk(id, 2, chunkOf(bytes, 2));
    assert.deepEqual(seen, [0, 2]);
    unsubscribe();
    await store.writeChunk(id, 1, chunkOf(bytes, 1));
    assert.deepEqual(seen, [0, 2]);

    const imported: string[] = [];
    store.onChunk((pid, i) => imported.push(`${pid}:${i}`));
    const other = pseudoRandom(2 * MiB, 15);
    const { payloadId } = await store.importStream(streamOf(other));
    assert.deepEqual(imported, [`${payloadId}:0`, `${payloadId}:1`]);
  });
});

Deno.test("close() is idempotent and later writes are refused", async () => {
  await withStore(async (store) => {
    const bytes = pseudoRandom(10, 16);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    await store.addManifest(id, manifest);
    store.close();
    store.close();
    await assert.rejects(store.writeChunk(id, 0, bytes), /closed/);
    await assert.rejects(store.importStream(streamOf(bytes)), /closed/);
    assert.deepEqual(store.missing(id), [0]);
  });
});

Deno.test("importStream() then exportStream() round-trips payloads of 1 byte to 3 MiB (property)", async () => {
  await withStore(async (store) => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE),
          fc.integer({ min: 1, max: 3 * MiB }),
        ),
        fc.integer({ min: 1000, max: 2 * MiB }),
        fc.integer(),
        async (size, piece, seed) => {
          const bytes = pseudoRandom(size, seed);
          const { payloadId } = await store.importStream(streamOf(bytes, piece));
          assert.equal(payloadId, await payloadIdOf(await manifestOf(bytes)));
          assert.equal(store.payload(payloadId)?.complete, true);
          assert.deepEqual(await collect(store.exportStream(payloadId)), bytes);
        },
      ),
      { numRuns: 30 },
    );
  });
});

Deno.test("writeChunk() and importStream() refuse with store_full past maxBytes and write nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { maxBytes: 2 * MiB });
    const bytes = pseudoRandom(3 * MiB, 7);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    await store.addManifest(id, manifest);
    assert.equal(store.room(), 2 * MiB);
    await store.writeChunk(id, 0, chunkOf(bytes, 0));
    await store.writeChunk(id, 1, chunkOf(bytes, 1));
    assert.equal(store.usedBytes, 2 * MiB);
    assert.equal(store.room(), 0);
    await assert.rejects(
      store.writeChunk(id, 2, chunkOf(bytes, 2)),
      (e) => e instanceof TooLargeError && e.code === "store_full" && e.status === 413,
    );
    assert.equal(store.has(id, 2), false);
    await assert.rejects(store.importStream(streamOf(pseudoRandom(MiB, 9))), TooLargeError);
    assert.deepEqual(await filesUnder(`${dir}/data`), [id]);
    assert.equal(store.usedBytes, 2 * MiB);
    assert.equal((await filesUnder(`${dir}/tmp`)).length, 0);
    store.close();
    // Counted again from the files at start.
    const again = await ChunkStore.open(dir, { maxBytes: 2 * MiB });
    assert.equal(again.usedBytes, 2 * MiB);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("capacity() without maxBytes keeps 10 % of the disk free, read with the disk reader", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A disk of 100 MiB with 12 MiB available: 2 MiB may be used.
    const available = 12 * MiB;
    const store = await ChunkStore.open(dir, {
      disk: () => ({ total: 100 * MiB, available }),
    });
    assert.equal(store.capacity(), 2 * MiB);
    const bytes = pseudoRandom(3 * MiB, 11);
    const manifest = await manifestOf(bytes);
    const id = await payloadIdOf(manifest);
    await store.addManifest(id, manifest);
    await store.writeChunk(id, 0, chunkOf(bytes, 0));
    await store.writeChunk(id, 1, chunkOf(bytes, 1));
    await assert.rejects(store.writeChunk(id, 2, chunkOf(bytes, 2)), TooLargeError);
    assert.equal(store.usedBytes, 2 * MiB);
    store.close();
    // The real disk: some capacity, under its size.
    const real = await ChunkStore.open(dir);
    assert.ok(real.capacity() > 0);
    real.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pin() marks a payload the owner's across a reopen, and remove() drops its manifest and its file", async () => {
  await withStore(async (store, dir) => {
    const shared = pseudoRandom(MiB, 21);
    const a = concatBytes(shared, pseudoRandom(MiB, 22));
    const b = concatBytes(shared, pseudoRandom(10, 23));
    const { payloadId: aId } = await store.importStream(streamOf(a), { name: "a" });
    const { payloadId: bId } = await store.importStream(streamOf(b), { pinned: true });
    assert.equal(store.payload(aId)?.pinned, false);
    assert.equal(store.payload(bId)?.pinned, true);
    await store.pin(aId);
    const reopened = await ChunkStore.open(dir);
    assert.equal(reopened.payload(aId)?.pinned, true);
    assert.equal(reopened.payload(aId)?.name, "a");
    reopened.close();

    assert.equal(await store.remove(aId), 2 * MiB, "a's file, shared chunk included");
    assert.equal(store.payload(aId), undefined);
    assert.deepEqual(await filesUnder(`${dir}/data`), [bId]);
    assert.deepEqual(await collect(store.exportStream(bId)), b);
    await assert.rejects(Deno.stat(`${dir}/manifests/${aId}.json`), Deno.errors.NotFound);
    assert.equal(await store.remove(bId), MiB + 10);
    assert.deepEqual(await filesUnder(`${dir}/data`), []);
    await assert.rejects(store.remove(bId), RangeError);
  });
});

Deno.test("ChunkStore.open() moves a store of one file per chunk into payload files", async () => {
  await withStore(async (first, dir) => {
    const bytes = pseudoRandom(2 * MiB + 5, 31);
    const { payloadId, manifest } = await first.importStream(streamOf(bytes), { name: "old" });
    first.close();
    // The earlier layout: chunks/<hh>/<sha256>, one file per chunk, and no data/.
    for (const [i, hash] of manifest.chunks.entries()) {
      await Deno.mkdir(`${dir}/chunks/${hash.slice(0, 2)}`, { recursive: true });
      await Deno.writeFile(`${dir}/chunks/${hash.slice(0, 2)}/${hash}`, chunkOf(bytes, i));
    }
    await Deno.remove(`${dir}/data`, { recursive: true });
    const warnings: string[] = [];
    const store = await ChunkStore.open(dir, { warn: (m) => warnings.push(m) });
    try {
      assert.equal(store.payload(payloadId)?.complete, true);
      assert.equal(store.payload(payloadId)?.name, "old");
      assert.deepEqual(await collect(store.exportStream(payloadId)), bytes);
      assert.deepEqual(await filesUnder(`${dir}/data`), [payloadId]);
      await assert.rejects(Deno.stat(`${dir}/chunks`), Deno.errors.NotFound);
      assert.match(warnings.join("\n"), /moved 3 chunks/);
    } finally {
      store.close();
    }
  });
});
