import assert from "node:assert/strict";
import fc from "fast-check";
import { fromBase64, fromHex, PeerId, randomPeerId, toBase64, toHex } from "./ids.ts";

Deno.test("hex and base64 helpers round-trip any bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100_000 }), (b) => {
      assert.deepEqual(fromHex(toHex(b)), b);
      assert.deepEqual(fromBase64(toBase64(b)), b);
    }),
    { numRuns: 50 },
  );
});

Deno.test("fromHex() and fromBase64() reject malformed text with TypeError", () => {
  assert.throws(() => fromHex("abc"), TypeError);
  assert.throws(() => fromHex("zz"), TypeError);
  assert.throws(() => fromBase64("!!!"), TypeError);
});

Deno.test("randomPeerId() gives distinct well-formed peerIds", () => {
  const a = randomPeerId();
  assert.ok(PeerId.safeParse(a).success);
  assert.notEqual(a, randomPeerId());
});
