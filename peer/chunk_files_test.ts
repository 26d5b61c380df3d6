import assert from "node:assert/strict";
import { ChunkFiles, DISK_FREE_SHARE, diskSpace } from "./chunk_files.ts";
import { TooLargeError } from "../proto/errors.ts";
import { BufferPool } from "../proto/bytes.ts";

const MiB = 1024 * 1024;
const A = "ab".repeat(32);
const B = "cd".repeat(32);

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("new ChunkFiles() rejects a negative or NaN maxBytes with RangeError", () => {
  for (const maxBytes of [-1, NaN]) {
    assert.throws(() => new ChunkFiles("/nowhere", { maxBytes }), RangeError);
  }
});

Deno.test("ChunkFiles.prepare() creates chunks/ and tmp/ and empties tmp/", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/tmp/left`, { recursive: true });
    await Deno.writeTextFile(`${dir}/tmp/stale`, "x");
    await new ChunkFiles(dir).prepare();
    assert.ok((await Deno.stat(`${dir}/chunks`)).isDirectory);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
  });
});

Deno.test("ChunkFiles.store() writes a chunk once under its hash, also when calls race", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir, { maxBytes: MiB });
    await files.prepare();
    const bytes = new Uint8Array([1, 2, 3]);
    await Promise.all([files.store(A, bytes), files.store(A, bytes), files.store(A, bytes)]);
    assert.deepEqual(await Deno.readFile(`${dir}/chunks/ab/${A}`), bytes);
    assert.equal(files.size(A), 3);
    assert.equal(files.usedBytes, 3);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
  });
});

Deno.test("ChunkFiles.store() refuses with store_full past maxBytes and writes nothing", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir, { maxBytes: 4 });
    await files.prepare();
    assert.equal(files.room(), 4);
    await files.store(A, new Uint8Array(3));
    assert.equal(files.room(), 1);
    await assert.rejects(
      files.store(B, new Uint8Array(2)),
      (e) => e instanceof TooLargeError && e.code === "store_full" && e.status === 413,
    );
    assert.equal(files.size(B), undefined);
    assert.equal(files.usedBytes, 3);
    await assert.rejects(Deno.stat(`${dir}/chunks/cd/${B}`), Deno.errors.NotFound);
  });
});

Deno.test("ChunkFiles counts a write under way against the capacity", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir, { maxBytes: 4 });
    await files.prepare();
    const first = files.store(A, new Uint8Array(3));
    assert.equal(files.room(), 1);
    await assert.rejects(files.store(B, new Uint8Array(2)), TooLargeError);
    await first;
    assert.equal(files.usedBytes, 3);
  });
});

Deno.test("ChunkFiles.capacity() keeps DISK_FREE_SHARE of the disk free and reads it every 2 s", async () => {
  await withDir(async (dir) => {
    let now = 0;
    let reads = 0;
    let available = 12 * MiB;
    const files = new ChunkFiles(dir, {
      disk: () => (reads++, { total: 100 * MiB, available }),
      now: () => now,
    });
    await files.prepare();
    assert.equal(DISK_FREE_SHARE, 0.1);
    // 100 MiB with 12 MiB available: 2 MiB may be used.
    assert.equal(files.capacity(), 2 * MiB);
    await files.store(A, new Uint8Array(MiB));
    // The reading is reused: the store's own write does not shrink the capacity.
    assert.equal(files.capacity(), 2 * MiB);
    assert.equal(files.room(), MiB);
    assert.equal(reads, 1);
    available = 11 * MiB;
    now = 2000;
    assert.equal(files.capacity(), 2 * MiB);
    assert.equal(reads, 2);
    available = 5 * MiB;
    now = 4000;
    assert.equal(files.capacity(), MiB);
    assert.equal(files.room(), 0);
  });
});

Deno.test("ChunkFiles.stat() learns the sizes of files already in place", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/chunks/ab`, { recursive: true });
    await Deno.writeFile(`${dir}/chunks/ab/${A}`, new Uint8Array(5));
    const files = new ChunkFiles(dir);
    await files.prepare();
    assert.equal(files.size(A), undefined);
    await files.stat([A, B, A]);
    assert.equal(files.size(A), 5);
    assert.equal(files.size(B), undefined);
    assert.equal(files.usedBytes, 5);
  });
});

Deno.test("ChunkFiles.read() returns the file's bytes, short or one byte long as found", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir);
    await files.prepare();
    await files.store(A, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await files.read(A, 3), new Uint8Array([1, 2, 3]));
    assert.equal((await files.read(A, 4)).length, 3);
    assert.equal((await files.read(A, 1)).length, 2);
    await assert.rejects(files.read(B, 3), Deno.errors.NotFound);
  });
});

Deno.test("ChunkFiles.remove() stops counting a chunk at once and deletes its file", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir);
    await files.prepare();
    await files.store(A, new Uint8Array(3));
    const removal = files.remove(A);
    assert.equal(files.size(A), undefined);
    assert.equal(files.usedBytes, 0);
    await removal;
    await assert.rejects(Deno.stat(`${dir}/chunks/ab/${A}`), Deno.errors.NotFound);
    await files.remove(B); // unknown: nothing to do
  });
});

Deno.test("ChunkFiles.writeAtomic() puts a file in place through tmp/", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir);
    await files.prepare();
    await files.writeAtomic(`${dir}/note.json`, new TextEncoder().encode("{}"));
    assert.equal(await Deno.readTextFile(`${dir}/note.json`), "{}");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
  });
});

Deno.test("diskSpace() reads a real disk's size and free space", () => {
  const { total, available } = diskSpace(Deno.cwd());
  assert.ok(total > 0);
  assert.ok(available >= 0 && available <= total);
});

Deno.test("ChunkFiles.read() with a pool reads into its buffers; a short file comes back short, a missing one takes none", async () => {
  await withDir(async (dir) => {
    const files = new ChunkFiles(dir, { maxBytes: MiB });
    await files.prepare();
    await files.store(A, new Uint8Array([1, 2, 3]));
    const pool = new BufferPool(16, 4);
    const got = await files.read(A, 3, pool);
    assert.deepEqual([...got], [1, 2, 3]);
    assert.equal(got.buffer.byteLength, 16, "read into the pool's buffer");
    assert.ok(pool.release(got));
    assert.equal((await files.read(A, 5, pool)).length, 3);
    // Too large for the pool: a fresh buffer.
    assert.equal((await files.read(A, 20, pool)).buffer.byteLength, 21);
    await assert.rejects(files.read(B, 3, pool), Deno.errors.NotFound);
  });
});
