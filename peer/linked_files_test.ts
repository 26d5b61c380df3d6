import assert from "node:assert/strict";
import { ChunkStore } from "./chunk_store.ts";
import { IntegrityError } from "../proto/errors.ts";
import { CHUNK_SIZE, type Manifest, payloadIdOf, sha256Hex } from "../proto/manifest.ts";
import {
  checkDestination,
  DestinationRefusedError,
  LocalFileSource,
  PARTIAL_SUFFIX,
} from "./linked_files.ts";

const MiB = 1024 * 1024;

function pseudoRandom(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function manifestOf(bytes: Uint8Array): Promise<{ id: string; manifest: Manifest }> {
  const chunks: string[] = [];
  for (let o = 0; o < bytes.length; o += CHUNK_SIZE) {
    chunks.push(await sha256Hex(bytes.subarray(o, o + CHUNK_SIZE)));
  }
  const manifest = { size: bytes.length, chunkSize: CHUNK_SIZE, chunks };
  return { id: await payloadIdOf(manifest), manifest };
}

const chunk = (bytes: Uint8Array, i: number) => bytes.slice(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);

/** Bytes of every file under `root`, recursively. */
async function bytesUnder(root: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(root)) {
    const p = `${root}/${e.name}`;
    if (e.isDirectory) n += await bytesUnder(p);
    else if (e.isFile) n += (await Deno.stat(p)).size;
  }
  return n;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A store in a temp dir, and a folder for the owner's files. */
async function withDirs(f: (storeDir: string, home: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/home`);
    await f(`${root}/store`, `${root}/home`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("ChunkStore.linkTo(): a download goes straight into the file, the store keeps no copy and counts none against maxBytes", async () => {
  await withDirs(async (dir, home) => {
    const bytes = pseudoRandom(3.5 * MiB, 3);
    const { id, manifest } = await manifestOf(bytes);
    // The store has room for one chunk only: a linked download needs none.
    const store = await ChunkStore.open(dir, { maxBytes: MiB });
    const dest = `${home}/out.bin`;
    await store.linkTo(id, dest + PARTIAL_SUFFIX);
    assert.equal(store.linking(id), true);
    await store.addManifest(id, manifest);
    const heard: number[] = [];
    store.onChunk((_, i) => heard.push(i));
    for (const i of [3, 0, 2, 1]) {
      assert.equal(await store.writeChunk(id, i, chunk(bytes, i)), true);
    }
    assert.equal(await store.writeChunk(id, 1, chunk(bytes, 1)), false, "once");
    assert.deepEqual(heard.sort(), [0, 1, 2, 3]);
    // Served to others from the partial file while it is filled.
    assert.deepEqual(await store.readChunk(id, 2), chunk(bytes, 2));
    await store.finishLink(id, dest, false);
    await assert.rejects(Deno.stat(dest + PARTIAL_SUFFIX), Deno.errors.NotFound);
    assert.deepEqual(await Deno.readFile(dest), bytes);
    assert.equal(store.usedBytes, 0);
    assert.equal(store.linkedBytes, bytes.length);
    assert.equal(await bytesUnder(`${dir}/data`), 0, "no payload file");
    assert.equal(store.payload(id)?.complete, true);
    assert.deepEqual(await collect(store.exportStream(id)), bytes);
    store.close();

    // After a restart the file is found again by its size and mtime.
    const again = await ChunkStore.open(dir, { maxBytes: MiB });
    assert.equal(again.payload(id)?.complete, true);
    assert.deepEqual(await again.readChunk(id, 3), chunk(bytes, 3));
    again.close();
  });
});

Deno.test("ChunkStore: a linked file that the owner changed or removed is no longer served", async () => {
  await withDirs(async (dir, home) => {
    const bytes = pseudoRandom(2.5 * MiB, 4);
    const path = `${home}/mine.bin`;
    await Deno.writeFile(path, bytes);
    const store = await ChunkStore.open(dir);
    const { payloadId } = await store.importStream(await LocalFileSource.open(path));
    assert.equal(store.usedBytes, 0, "a local put writes no payload file");
    assert.deepEqual(await store.readChunk(payloadId, 1), chunk(bytes, 1));

    // The same size, a later mtime: changed.
    const changed = bytes.slice();
    changed[10] ^= 1;
    await Deno.writeFile(path, changed);
    await Deno.utime(path, new Date(), new Date(Date.now() + 5000));
    await assert.rejects(store.readChunk(payloadId, 0), IntegrityError);
    assert.equal(store.payload(payloadId)?.held, 0, "nothing of it held any more");
    assert.deepEqual(store.missing(payloadId), [0, 1, 2]);
    store.close();
    // Nor after a restart.
    const again = await ChunkStore.open(dir, { warn: () => {} });
    assert.equal(again.payload(payloadId)?.held, 0);
    again.close();

    // Removed: the same.
    const other = pseudoRandom(1.5 * MiB, 5);
    const path2 = `${home}/other.bin`;
    await Deno.writeFile(path2, other);
    const s2 = await ChunkStore.open(`${dir}2`, { warn: () => {} });
    const put = await s2.importStream(await LocalFileSource.open(path2));
    await Deno.remove(path2);
    await assert.rejects(s2.readChunk(put.payloadId, 1), IntegrityError);
    assert.equal(s2.payload(put.payloadId)?.held, 0);
    s2.close();
    await Deno.remove(`${dir}2`, { recursive: true });
  });
});

Deno.test("ChunkStore: a chunk of a linked file that fails its hash is dropped, never served", async () => {
  await withDirs(async (dir, home) => {
    const bytes = pseudoRandom(2.5 * MiB, 6);
    const path = `${home}/mine.bin`;
    await Deno.writeFile(path, bytes);
    const store = await ChunkStore.open(dir, { warn: () => {} });
    const { payloadId } = await store.importStream(await LocalFileSource.open(path));
    // Changed in place, keeping size and mtime (as a careless tool might).
    const st = await Deno.stat(path);
    using f = await Deno.open(path, { write: true });
    await f.seek(MiB + 7, Deno.SeekMode.Start);
    await f.write(new Uint8Array([bytes[MiB + 7] ^ 0xff]));
    await Deno.utime(path, st.atime!, st.mtime!);
    await assert.rejects(store.readChunk(payloadId, 1), IntegrityError);
    assert.deepEqual(store.missing(payloadId), [1], "only that chunk is dropped");
    assert.deepEqual(await store.readChunk(payloadId, 2), chunk(bytes, 2));
    store.close();
  });
});

Deno.test("ChunkStore: a crash mid-write leaves nothing of the partial file held after a restart", async () => {
  await withDirs(async (dir, home) => {
    const bytes = pseudoRandom(2.5 * MiB, 7);
    const { id, manifest } = await manifestOf(bytes);
    const dest = `${home}/out.bin`;
    const store = await ChunkStore.open(dir);
    await store.addManifest(id, manifest);
    await store.linkTo(id, dest + PARTIAL_SUFFIX);
    await store.writeChunk(id, 0, chunk(bytes, 0));
    assert.equal(store.payload(id)?.held, 1);
    // The process dies here: no finishLink(), no abandonLink().
    const after = await ChunkStore.open(dir);
    assert.equal(after.payload(id)?.held, 0, "the partial file is not trusted");
    await assert.rejects(Deno.stat(dest), Deno.errors.NotFound);
    after.close();
    store.close();
  });
});

Deno.test("ChunkStore.abandonLink(): the chunks received are kept in the payload file, so the next run resumes", async () => {
  await withDirs(async (dir, home) => {
    const bytes = pseudoRandom(2.5 * MiB, 8);
    const { id, manifest } = await manifestOf(bytes);
    const dest = `${home}/out.bin`;
    const store = await ChunkStore.open(dir);
    await store.addManifest(id, manifest);
    await store.linkTo(id, dest + PARTIAL_SUFFIX);
    await store.writeChunk(id, 1, chunk(bytes, 1));
    await store.abandonLink(id);
    await assert.rejects(Deno.stat(dest + PARTIAL_SUFFIX), Deno.errors.NotFound);
    assert.deepEqual(store.missing(id), [0, 2]);
    assert.equal(store.usedBytes, MiB);
    // The next run copies what is held into its new file and fetches the rest.
    await store.linkTo(id, dest + PARTIAL_SUFFIX);
    for (const i of [0, 2]) await store.writeChunk(id, i, chunk(bytes, i));
    await store.finishLink(id, dest, false);
    assert.deepEqual(await Deno.readFile(dest), bytes);
    store.close();
  });
});

Deno.test("checkDestination() and finishLink() keep the get rules: no overwrite without force, never through a symlink", async () => {
  await withDirs(async (dir, home) => {
    await Deno.writeTextFile(`${home}/there`, "mine");
    await assert.rejects(checkDestination(`${home}/there`, false), DestinationRefusedError);
    await checkDestination(`${home}/there`, true);
    await assert.rejects(checkDestination("relative/x", true), /not an absolute path/);
    await assert.rejects(checkDestination(`${home}/../x`, true), /not an absolute path/);
    await assert.rejects(checkDestination(`${home}/nope/x`, true), /does not exist/);
    await Deno.symlink(`${home}/there`, `${home}/link`);
    await assert.rejects(checkDestination(`${home}/link`, false), /exists/);

    // A symlink planted at the partial name is replaced, its target untouched.
    const bytes = pseudoRandom(1.5 * MiB, 9);
    const { id, manifest } = await manifestOf(bytes);
    await Deno.writeTextFile(`${home}/victim`, "untouched");
    await Deno.symlink(`${home}/victim`, `${home}/out.bin${PARTIAL_SUFFIX}`);
    const store = await ChunkStore.open(dir);
    await store.addManifest(id, manifest);
    await store.linkTo(id, `${home}/out.bin${PARTIAL_SUFFIX}`);
    for (const i of [0, 1]) await store.writeChunk(id, i, chunk(bytes, i));
    // A file that appeared meanwhile is kept without force.
    await Deno.writeTextFile(`${home}/out.bin`, "appeared");
    await assert.rejects(store.finishLink(id, `${home}/out.bin`, false), /appeared meanwhile/);
    assert.equal(await Deno.readTextFile(`${home}/out.bin`), "appeared");
    assert.equal(await Deno.readTextFile(`${home}/victim`), "untouched");
    await store.abandonLink(id);
    store.close();
  });
});
