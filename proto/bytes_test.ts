import assert from "node:assert/strict";
import fc from "fast-check";
import { BufferPool } from "./bytes.ts";

Deno.test("BufferPool.take() gives a view of the asked length over a buffer of the pool's size", () => {
  const pool = new BufferPool(1024);
  const a = pool.take(100);
  assert.equal(a.length, 100);
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, 1024);
  assert.equal(pool.take(0).length, 0);
  assert.equal(pool.take(1024).length, 1024);
});

Deno.test("BufferPool reuses a released buffer, through any view of it", () => {
  const pool = new BufferPool(64);
  const a = pool.take(10);
  a.fill(7);
  assert.equal(pool.release(a.subarray(3, 5)), true);
  assert.equal(pool.idle, 1);
  const b = pool.take(20);
  assert.equal(b.buffer, a.buffer);
  assert.equal(pool.idle, 0);
  // Whatever the last user left is still there: the pool does not clear.
  assert.deepEqual([...b.subarray(0, 10)], Array(10).fill(7));
});

Deno.test("BufferPool.release() ignores foreign arrays and a second release", () => {
  const pool = new BufferPool(64);
  assert.equal(pool.release(new Uint8Array(64)), false);
  const other = new BufferPool(64).take(8);
  assert.equal(pool.release(other), false);
  const a = pool.take(8);
  assert.equal(pool.release(a), true);
  assert.equal(pool.release(a), false);
  assert.equal(pool.idle, 1);
  // The buffer went back once, so two takes get two different buffers.
  assert.notEqual(pool.take(8).buffer, pool.take(8).buffer);
});

Deno.test("BufferPool keeps at most maxIdle released buffers", () => {
  const pool = new BufferPool(16, 2);
  const taken = [pool.take(1), pool.take(1), pool.take(1)];
  assert.deepEqual(taken.map((t) => pool.release(t)), [true, true, false]);
  assert.equal(pool.idle, 2);
});

Deno.test("BufferPool rejects bad sizes and lengths with RangeError", () => {
  assert.throws(() => new BufferPool(0), RangeError);
  assert.throws(() => new BufferPool(1.5), RangeError);
  assert.throws(() => new BufferPool(8, 0), RangeError);
  const pool = new BufferPool(8);
  assert.throws(() => pool.take(9), /Cannot take '9' bytes from a pool of '8'-byte buffers/);
  assert.throws(() => pool.take(-1), RangeError);
  assert.throws(() => pool.take(0.5), RangeError);
});

Deno.test("BufferPool never lends one buffer twice at a time, whatever the order of takes and releases", () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constant(-1), fc.nat(20)), { maxLength: 60 }), (ops) => {
      const pool = new BufferPool(8, 4);
      const out: Uint8Array[] = [];
      for (const op of ops) {
        if (op < 0 || out.length === 0) out.push(pool.take(8));
        else pool.release(out.splice(op % out.length, 1)[0]);
        assert.equal(new Set(out.map((b) => b.buffer)).size, out.length);
        assert.ok(pool.idle <= 4);
      }
    }),
    { numRuns: 200 },
  );
});
