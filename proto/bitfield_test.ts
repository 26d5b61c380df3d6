import assert from "node:assert/strict";
import fc from "fast-check";
import {
  assertBitfield,
  bitfieldCount,
  bitfieldFromIndices,
  bitfieldIndices,
  formatRanges,
  hasBit,
  setBit,
} from "./bitfield.ts";

Deno.test("bitfieldFromIndices() and bitfieldIndices() round-trip any set of positions", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 200 }).chain((n) =>
        fc.tuple(fc.constant(n), fc.uniqueArray(fc.nat(Math.max(0, n - 1)), { maxLength: n }))
      ),
      ([n, idx]) => {
        const bits = bitfieldFromIndices(n, idx);
        assertBitfield(bits, n);
        assert.deepEqual(bitfieldIndices(bits, n), [...idx].sort((a, b) => a - b));
        assert.equal(bitfieldCount(bits, n), idx.length);
      },
    ),
  );
});

Deno.test("bitfields set bits MSB first within each byte", () => {
  const bits = bitfieldFromIndices(10, [0, 9]);
  assert.deepEqual([...bits], [0x80, 0x40]);
  assert.ok(hasBit(bits, 0) && hasBit(bits, 9) && !hasBit(bits, 1));
});

Deno.test("assertBitfield() rejects wrong lengths and spare bits; indices out of range throw", () => {
  assert.throws(() => assertBitfield(new Uint8Array(1), 9), RangeError);
  assert.throws(() => assertBitfield(new Uint8Array([0x01]), 7), /past the last chunk/);
  assertBitfield(new Uint8Array([0xfe]), 7);
  assert.throws(() => bitfieldFromIndices(4, [4]), RangeError);
  assert.throws(() => bitfieldFromIndices(4, [-1]), RangeError);
});

Deno.test("formatRanges() writes compact ranges", () => {
  assert.equal(formatRanges(bitfieldFromIndices(10, [0, 1, 2, 4, 7, 8]), 10), "0-2,4,7-8");
  assert.equal(formatRanges(bitfieldFromIndices(3, []), 3), "-");
  assert.equal(formatRanges(bitfieldFromIndices(3, [2]), 3), "2");
});

Deno.test("setBit() sets and clears one position, MSB first, leaving the others", () => {
  const bits = new Uint8Array(2);
  setBit(bits, 0, true);
  setBit(bits, 9, true);
  assert.deepEqual([...bits], [0x80, 0x40]);
  setBit(bits, 0, false);
  setBit(bits, 0, false);
  assert.deepEqual([...bits], [0x00, 0x40]);
  assert.equal(hasBit(bits, 9), true);
});
