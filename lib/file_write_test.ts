import assert from "node:assert/strict";
import { WRITE_PIECE, writeInPieces } from "./file_write.ts";

Deno.test("writeInPieces() writes every byte at the file's position, in writes of at most WRITE_PIECE", async () => {
  const path = await Deno.makeTempFile();
  try {
    const bytes = new Uint8Array(2 * WRITE_PIECE + 12_345).map((_, i) => (i * 31) & 0xff);
    {
      using file = await Deno.open(path, { write: true });
      await file.write(new Uint8Array([9, 9, 9]));
      const writes: number[] = [];
      const write = file.write.bind(file);
      file.write = (p: Uint8Array) => {
        writes.push(p.byteLength);
        return write(p);
      };
      await writeInPieces(file, bytes);
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
