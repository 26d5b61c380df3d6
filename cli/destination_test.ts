import assert from "node:assert/strict";
import { looksBinary, resolveDestination, safeFileName } from "./destination.ts";

const ID = "ab".repeat(32);

Deno.test("safeFileName() keeps the last part of a name, without control characters", () => {
  assert.equal(safeFileName("dir/two words é.txt", ID), "two words é.txt");
  assert.equal(safeFileName("..\\evil\x07.exe", ID), "evil.exe");
  assert.equal(safeFileName("..", ID), "abababababab.bin");
  assert.equal(safeFileName(undefined, ID), "abababababab.bin");
});

Deno.test("looksBinary() is true for a NUL or bytes that are not UTF-8", () => {
  assert.equal(looksBinary(new TextEncoder().encode("héllo\n")), false);
  assert.equal(looksBinary(new Uint8Array([104, 0, 105])), true);
  assert.equal(looksBinary(new Uint8Array([0xff, 0xfe, 0x41])), true);
});

Deno.test("resolveDestination() refuses a dangling symlink at the name without --force", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-dest-" });
  try {
    await Deno.symlink(`${dir}/nowhere`, `${dir}/x.bin`);
    await assert.rejects(
      resolveDestination({ output: `${dir}/x.bin`, payloadId: ID, stdoutIsTerminal: true }),
      { code: "exists" },
    );
    const dest = await resolveDestination({
      output: dir,
      name: "sub/x.bin",
      payloadId: ID,
      force: true,
      stdoutIsTerminal: true,
    });
    assert.deepEqual(dest, {
      kind: "file",
      path: `${dir}/x.bin`,
      shown: `${dir}/x.bin`,
      force: true,
    });
    assert.deepEqual(
      await resolveDestination({ payloadId: ID, stdoutIsTerminal: false }),
      { kind: "stdout" },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
