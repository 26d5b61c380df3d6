import assert from "node:assert/strict";
import { readAtSync, WRITE_PIECE, writeAtSync, writeInPieces } from "./file_io.ts";

Deno.test("writeInPieces() writes every byte at the file's position, in writes of at most WRITE_PIECE", async () => {
  const path = await Deno.makeTempFile();
  try {
    const bytes = new Uint8Array(2 * WRITE_PIECE + 12_345).map((_, i) => (i * 31) & 0xff);
    {
      using file = await Deno.open(path, { write: true });
      await file.write(new Uint8Array([9, 9, 9]));
      const writes: number[] = [];
      const write = file.writeSync.bind(file);
      file.writeSync = (p: Uint8Array) => {
        writes.push(p.byteLength);
        return write(p);
      };
      writeInPieces(file, bytes);
      assert.ok(writes.length >= 3, `${writes.length} writes`);
      assert.ok(writes.every((n) => n <= WRITE_PIECE), `writes of ${writes.join(", ")} bytes`);
    }
    const back = await Deno.readFile(path);
    assert.deepEqual(back.subarray(0, 3), new Uint8Array([9, 9, 9]));
    assert.deepEqual(back.subarray(3), bytes);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("readAtSync() reads from the offset until the buffer is full or the file ends", async () => {
  const path = await Deno.makeTempFile();
  try {
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) & 0xff);
    await Deno.writeFile(path, bytes);
    using file = await Deno.open(path);
    const full = new Uint8Array(40_000);
    assert.equal(readAtSync(file, 50_000, full), 40_000);
    assert.deepEqual(full, bytes.subarray(50_000, 90_000));
    const tail = new Uint8Array(40_000);
    assert.equal(readAtSync(file, 90_000, tail), 10_000);
    assert.deepEqual(tail.subarray(0, 10_000), bytes.subarray(90_000));
    assert.equal(readAtSync(file, 200_000, tail), 0);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("writeAtSync() writes every byte at the offset, the rest of the file as it was", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, new Uint8Array(100).fill(1));
    const bytes = new Uint8Array(WRITE_PIECE + 10).fill(2);
    {
      using file = await Deno.open(path, { write: true });
      writeAtSync(file, 50, bytes);
    }
    const back = await Deno.readFile(path);
    assert.equal(back.length, 50 + bytes.length);
    assert.deepEqual(back.subarray(0, 50), new Uint8Array(50).fill(1));
    assert.deepEqual(back.subarray(50), bytes);
  } finally {
    await Deno.remove(path);
  }
});
