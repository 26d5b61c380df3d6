import assert from "node:assert/strict";
import { DISK_FREE_SHARE, diskSpace, migrateChunkFiles, PayloadFiles } from "./payload_files.ts";
import { TooLargeError } from "../proto/errors.ts";
import { BufferPool } from "../proto/bytes.ts";
import type { Manifest } from "../proto/manifest.ts";

const MiB = 1024 * 1024;
/** A payload of 3 chunks of 4 bytes, the last one 2 bytes long. */
const M: Manifest = {
  size: 10,
  chunkSize: 4,
  chunks: ["aa".repeat(32), "bb".repeat(32), "cc".repeat(32)],
};
const chunk = (i: number) => new Uint8Array(i === 2 ? 2 : 4).fill(i + 1);

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function opened(dir: string, opts: ConstructorParameters<typeof PayloadFiles>[1] = {}) {
  const files = new PayloadFiles(dir, opts);
  await files.prepare();
  await files.open("p", M);
  return files;
}

Deno.test("new PayloadFiles() rejects a negative or NaN maxBytes with RangeError", () => {
  for (const maxBytes of [-1, NaN]) {
    assert.throws(() => new PayloadFiles("/nowhere", { maxBytes }), RangeError);
  }
});

Deno.test("PayloadFiles.prepare() creates data/ and tmp/ and empties tmp/", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/tmp/left`, { recursive: true });
    await Deno.writeTextFile(`${dir}/tmp/stale`, "x");
    await new PayloadFiles(dir).prepare();
    assert.ok((await Deno.stat(`${dir}/data`)).isDirectory);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
  });
});

Deno.test("PayloadFiles.write() puts a chunk at its offset once, also when calls race, then its trailer bit", async () => {
  await withDir(async (dir) => {
    const files = await opened(dir, { maxBytes: MiB });
    const wins = await Promise.all([1, 2, 3].map(() => files.write("p", 1, chunk(1))));
    assert.deepEqual(wins.sort(), [false, false, true]);
    assert.equal(await files.write("p", 2, chunk(2)), true);
    const raw = await Deno.readFile(files.path("p"));
    // 10 payload bytes (chunk 0 a hole of zeros), then one trailer byte: chunks 1 and 2.
    assert.deepEqual([...raw], [0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 0b0110_0000]);
    assert.equal(files.stored("p", 0), false);
    assert.equal(files.stored("p", 1), true);
    assert.equal(files.usedBytes, 6);
    assert.equal(files.bytesOf("p"), 6);
    await assert.rejects(files.write("unknown", 0, chunk(0)), RangeError);
  });
});

Deno.test("PayloadFiles.write() refuses with store_full past maxBytes, counting writes under way, and writes nothing", async () => {
  await withDir(async (dir) => {
    const files = await opened(dir, { maxBytes: 6 });
    assert.equal(files.room(), 6);
    const first = files.write("p", 0, chunk(0));
    assert.equal(files.room(), 2, "a write under way counts");
    await assert.rejects(
      files.write("p", 1, chunk(1)),
      (e) => e instanceof TooLargeError && e.code === "store_full" && e.status === 413,
    );
    await first;
    assert.equal(files.stored("p", 1), false);
    assert.equal(files.usedBytes, 4);
    assert.equal(await files.write("p", 2, chunk(2)), true);
    assert.equal(files.room(), 0);
  });
});

Deno.test("PayloadFiles.capacity() keeps DISK_FREE_SHARE of the disk free and reads it every 2 s", async () => {
  await withDir(async (dir) => {
    let now = 0;
    let reads = 0;
    let available = 12 * MiB;
    const files = new PayloadFiles(dir, {
      disk: () => (reads++, { total: 100 * MiB, available }),
      now: () => now,
    });
    await files.prepare();
    await files.open("big", { size: MiB, chunkSize: MiB, chunks: ["dd".repeat(32)] });
    assert.equal(DISK_FREE_SHARE, 0.1);
    // 100 MiB with 12 MiB available: 2 MiB may be used.
    assert.equal(files.capacity(), 2 * MiB);
    await files.write("big", 0, new Uint8Array(MiB));
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

Deno.test("PayloadFiles.open() finds what an earlier instance held, and removes a file of the wrong size", async () => {
  await withDir(async (dir) => {
    const first = await opened(dir);
    await first.write("p", 0, chunk(0));
    await first.write("p", 2, chunk(2));
    const again = new PayloadFiles(dir);
    await again.prepare();
    assert.deepEqual(await again.open("p", M), { held: [0, 2], damaged: false });
    assert.equal(again.usedBytes, 6);
    assert.deepEqual(again.read("p", 2, 2), chunk(2));
    // Opening it twice changes nothing.
    assert.deepEqual((await again.open("p", M)).held, [0, 2]);
    assert.equal(again.usedBytes, 6);

    await Deno.truncate(first.path("p"), 9);
    const third = new PayloadFiles(dir);
    await third.prepare();
    assert.deepEqual(await third.open("p", M), { held: [], damaged: true });
    assert.equal(third.usedBytes, 0);
    await assert.rejects(Deno.stat(first.path("p")), Deno.errors.NotFound);
    // It is written again from scratch.
    assert.equal(await third.write("p", 1, chunk(1)), true);
    assert.equal((await Deno.stat(third.path("p"))).size, 11);
  });
});

Deno.test("PayloadFiles.read() returns the bytes, short when the file is, NotFound without a file; a pool's buffer when given", async () => {
  await withDir(async (dir) => {
    const files = await opened(dir);
    assert.throws(() => files.read("p", 0, 4), Deno.errors.NotFound);
    await files.write("p", 1, chunk(1));
    assert.deepEqual(files.read("p", 1, 4), chunk(1));
    const pool = new BufferPool(16, 4);
    const got = files.read("p", 1, 4, pool);
    assert.deepEqual(got, chunk(1));
    assert.equal(got.buffer.byteLength, 16, "read into the pool's buffer");
    assert.ok(pool.release(got));
    // Too large for the pool: a fresh buffer.
    assert.equal(files.read("p", 1, 4, new BufferPool(2, 1)).buffer.byteLength, 4);
    await Deno.truncate(files.path("p"), 6);
    assert.equal(files.read("p", 1, 4).length, 2);
  });
});

Deno.test("PayloadFiles.drop() forgets a chunk, on disk too; remove() deletes the file and says what it held", async () => {
  await withDir(async (dir) => {
    const files = await opened(dir);
    await files.write("p", 0, chunk(0));
    await files.write("p", 1, chunk(1));
    await files.drop("p", 0);
    await files.drop("p", 0); // not held: nothing to do
    assert.equal(files.stored("p", 0), false);
    assert.equal(files.usedBytes, 4);
    const again = new PayloadFiles(dir);
    await again.prepare();
    assert.deepEqual((await again.open("p", M)).held, [1]);
    assert.equal(await files.remove("p"), 4);
    assert.equal(files.usedBytes, 0);
    await assert.rejects(Deno.stat(files.path("p")), Deno.errors.NotFound);
    assert.equal(await files.remove("p"), 0);
  });
});

Deno.test("PayloadFiles imports: moved in whole when nothing is held, copied into a payload partly held, gone when aborted", async () => {
  await withDir(async (dir) => {
    const files = await opened(dir, { maxBytes: 100 });
    const whole = await files.startImport();
    for (const i of [0, 1, 2]) await whole.write(chunk(i));
    assert.equal(files.room(), 90, "an import's chunks count as they are written");
    assert.deepEqual(await files.adopt("p", whole), [0, 1, 2]);
    assert.equal(files.usedBytes, 10);
    assert.equal(files.room(), 90);
    assert.deepEqual(files.read("p", 1, 4), chunk(1));
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);

    await files.open("q", M);
    await files.write("q", 1, chunk(1));
    const part = await files.startImport();
    for (const i of [0, 1, 2]) await part.write(chunk(i));
    assert.deepEqual(await files.adopt("q", part), [0, 2]);
    assert.equal(files.bytesOf("q"), 10);
    assert.deepEqual(files.read("q", 0, 4), chunk(0));

    const dropped = await files.startImport();
    await dropped.write(chunk(0));
    await dropped.abort();
    assert.equal(files.room(), 80);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/tmp`)), []);
    const short = await files.startImport();
    await short.write(chunk(0));
    await files.open("r", M);
    await assert.rejects(files.adopt("r", short), RangeError);
    assert.equal(files.room(), 80);
  });
});

Deno.test("PayloadFiles.writeAtomic() puts a file in place through tmp/", async () => {
  await withDir(async (dir) => {
    const files = new PayloadFiles(dir);
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

Deno.test("migrateChunkFiles() moves one-file-per-chunk stores into payload files, skipping bad files", async () => {
  await withDir(async (dir) => {
    for (const [i, bytes] of [[0, chunk(0)], [1, new Uint8Array(3)]] as const) {
      await Deno.mkdir(`${dir}/chunks/${M.chunks[i].slice(0, 2)}`, { recursive: true });
      await Deno.writeFile(`${dir}/chunks/${M.chunks[i].slice(0, 2)}/${M.chunks[i]}`, bytes);
    }
    const files = new PayloadFiles(dir);
    await files.prepare();
    const warnings: string[] = [];
    await migrateChunkFiles(files, [{ payloadId: "p", manifest: M }], (m) => warnings.push(m));
    assert.equal(files.stored("p", 0), true, "the chunk of the right length");
    assert.equal(files.stored("p", 1), false, "a short file is not a chunk");
    assert.deepEqual(files.read("p", 0, 4), chunk(0));
    await assert.rejects(Deno.stat(`${dir}/chunks`), Deno.errors.NotFound);
    assert.match(warnings.join("\n"), /moved 1 chunks/);
    // Nothing to do once moved.
    await migrateChunkFiles(files, [{ payloadId: "p", manifest: M }], (m) => warnings.push(m));
    assert.equal(warnings.length, 1);
  });
});
