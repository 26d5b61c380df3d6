import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ChunkThreads, isShared } from "./chunk_threads.ts";

/** `n` bytes of shared memory (at `offset` into a larger buffer), filled from `seed`. */
function sharedBytes(n: number, seed: number, offset = 0): Uint8Array {
  const view = new Uint8Array(new SharedArrayBuffer(offset + n + 7), offset, n);
  for (let i = 0; i < n; i++) view[i] = (i * seed + 11) & 0xff;
  return view;
}

const hex = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

Deno.test("sha256Hex() hashes views of shared memory on the threads, 16 at once, and other bytes in place", async () => {
  const threads = new ChunkThreads();
  try {
    const views = Array.from({ length: 16 }, (_, i) => sharedBytes(256 * 1024 + i, i + 3, i * 5));
    assert.ok(views.every(isShared));
    const got = await Promise.all(views.map((v) => threads.sha256Hex(v)));
    assert.deepEqual(got, views.map(hex));
    const plain = new Uint8Array([1, 2, 3]);
    assert.equal(isShared(plain), false);
    assert.equal(await threads.sha256Hex(plain), hex(plain));
  } finally {
    threads.close();
  }
});

Deno.test("writeAt() writes a shared view at its offset through the path, and other bytes through the handle", async () => {
  const threads = new ChunkThreads();
  const path = await Deno.makeTempFile();
  try {
    using file = await Deno.open(path, { read: true, write: true });
    await file.truncate(300_000);
    const a = sharedBytes(100_000, 7, 13);
    await threads.writeAt(path, file, 150_000, a);
    await threads.writeAt(path, file, 10, new Uint8Array([5, 6, 7]));
    const back = await Deno.readFile(path);
    assert.equal(back.length, 300_000);
    assert.deepEqual(back.subarray(150_000, 250_000), a.slice());
    assert.deepEqual(back.subarray(10, 13), new Uint8Array([5, 6, 7]));
    assert.deepEqual(back.subarray(250_000), new Uint8Array(50_000));
  } finally {
    threads.close();
    await Deno.remove(path);
  }
});

Deno.test("writeAt() rejects with the error the write met (NotFound for a missing file), and the threads keep working", async () => {
  const threads = new ChunkThreads();
  const dir = await Deno.makeTempDir();
  try {
    using file = await Deno.open(`${dir}/held`, { write: true, create: true });
    await assert.rejects(
      threads.writeAt(`${dir}/missing`, file, 0, sharedBytes(10, 1)),
      Deno.errors.NotFound,
    );
    const v = sharedBytes(1000, 9);
    assert.equal(await threads.sha256Hex(v), hex(v));
  } finally {
    threads.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after close() the threads are gone: jobs under way fail, later calls run in place", async () => {
  const threads = new ChunkThreads();
  const big = sharedBytes(8 * 1024 * 1024, 5);
  const under = threads.sha256Hex(big);
  threads.close();
  await assert.rejects(under, /Chunk threads were closed/);
  assert.equal(await threads.sha256Hex(big), hex(big));
  threads.close(); // idempotent
});
