import assert from "node:assert/strict";
import fc from "fast-check";
import {
  assertManifestLimits,
  assertManifestShape,
  CHUNK_SIZE,
  chunkCount,
  Chunker,
  chunkLength,
  encodeManifest,
  type Manifest,
  MAX_CHUNK_SIZE,
  MAX_CHUNKS,
  MAX_PAYLOAD_SIZE,
  payloadIdOf,
  sha256Hex,
  verifyChunk,
  verifyManifest,
} from "./manifest.ts";
import { IntegrityError, ProtocolError, TooLargeError } from "./errors.ts";

async function manifestOf(data: Uint8Array, chunkSize: number): Promise<Manifest> {
  const chunks: string[] = [];
  for (let off = 0; off < data.length; off += chunkSize) {
    chunks.push(await sha256Hex(data.subarray(off, off + chunkSize)));
  }
  return { size: data.length, chunkSize, chunks };
}

Deno.test("Chunker.push() cuts any split of a stream into the same chunks", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      fc.array(fc.nat(300), { maxLength: 10 }),
      fc.integer({ min: 1, max: 64 }),
      (data, cuts, size) => {
        const chunker = new Chunker(size);
        const out: Uint8Array[] = [];
        const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
        let prev = 0;
        for (const p of [...points, data.length]) {
          out.push(...chunker.push(data.subarray(prev, p)));
          prev = p;
        }
        const last = chunker.finish();
        if (last) out.push(last);
        assert.equal(chunker.total, data.length);
        assert.equal(out.length, chunkCount(data.length, size));
        out.forEach((c, i) => {
          assert.equal(c.length, chunkLength(data.length, i, size));
          assert.deepEqual(c, data.subarray(i * size, i * size + c.length));
        });
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("payloadIdOf() is the same for the same bytes and differs for different bytes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      async (a, b) => {
        const ida = await payloadIdOf(await manifestOf(a, 16));
        assert.equal(ida, await payloadIdOf(await manifestOf(a.slice(), 16)));
        assert.match(ida, /^[0-9a-f]{64}$/);
        const same = a.length === b.length && a.every((x, i) => x === b[i]);
        assert.equal(ida === await payloadIdOf(await manifestOf(b, 16)), same);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("encodeManifest() lays out domain, size, chunk size and hashes", async () => {
  const m = await manifestOf(new Uint8Array([1, 2, 3]), 2);
  const enc = encodeManifest(m);
  assert.equal(new TextDecoder().decode(enc.subarray(0, 16)), "p2p-manifest-v1\n");
  const view = new DataView(enc.buffer);
  assert.equal(view.getBigUint64(16), 3n);
  assert.equal(view.getUint32(24), 2);
  assert.equal(enc.length, 16 + 12 + 64);
  assert.throws(() => encodeManifest({ ...m, chunks: m.chunks.slice(1) }), RangeError);
});

Deno.test("verifyManifest() and verifyChunk() reject tampered manifests and bytes", async () => {
  const data = new TextEncoder().encode("abcdefghij");
  const m = await manifestOf(data, 4);
  const id = await payloadIdOf(m);
  await verifyManifest(id, m);
  await assert.rejects(verifyManifest(id, { ...m, size: 11 }), IntegrityError);
  await assert.rejects(verifyManifest(id, { ...m, size: 20 }), RangeError);
  const swapped = { ...m, chunks: [m.chunks[1], m.chunks[0], m.chunks[2]] };
  await assert.rejects(verifyManifest(id, swapped), IntegrityError);
  await verifyChunk(m, 2, data.subarray(8));
  await assert.rejects(verifyChunk(m, 0, data.subarray(4, 8)), IntegrityError);
  await assert.rejects(verifyChunk(m, 2, data.subarray(7)), IntegrityError);
  await assert.rejects(verifyChunk(m, 3, data.subarray(0, 1)), RangeError);
});

Deno.test("assertManifestShape() names what is wrong: id, size, chunk size, hash count, hash form", () => {
  const id = "a".repeat(64);
  const ok = {
    size: CHUNK_SIZE + 1,
    chunkSize: CHUNK_SIZE,
    chunks: ["b".repeat(64), "c".repeat(64)],
  };
  assertManifestShape(id, ok);
  assert.throws(() => assertManifestShape("A".repeat(64), ok), TypeError);
  assert.throws(() => assertManifestShape(id, { ...ok, size: 0 }), RangeError);
  assert.throws(
    () => assertManifestShape(id, { ...ok, chunkSize: MAX_CHUNK_SIZE + 1 }),
    (e) => e instanceof ProtocolError && e.code === "bad_chunk_size",
  );
  assert.throws(() => assertManifestShape(id, { ...ok, chunks: ["b".repeat(64)] }), /needs '2'/);
  assert.throws(() => assertManifestShape(id, { ...ok, chunks: ["b".repeat(64), "x"] }), TypeError);
});

Deno.test("assertManifestLimits() refuses another chunk size and a payload over MAX_PAYLOAD_SIZE from the header alone", () => {
  assertManifestLimits({ size: MAX_PAYLOAD_SIZE, chunkSize: CHUNK_SIZE });
  assert.equal(MAX_CHUNKS, 65_536);
  // The attack of issue 11: 524,288 hashes of 1-byte chunks.
  assert.throws(
    () => assertManifestLimits({ size: 524_288, chunkSize: 1 }),
    (e) => e instanceof ProtocolError && e.code === "bad_chunk_size",
  );
  // 524,288 hashes of 1 MiB chunks: 512 GiB, over the limit.
  assert.throws(
    () => assertManifestLimits({ size: 524_288 * CHUNK_SIZE, chunkSize: CHUNK_SIZE }),
    (e) => e instanceof TooLargeError && e.code === "payload_too_large" && e.status === 413,
  );
  assert.throws(
    () => assertManifestLimits({ size: Number.NaN, chunkSize: CHUNK_SIZE }),
    TooLargeError,
  );
});
