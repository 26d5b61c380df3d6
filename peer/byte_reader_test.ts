import assert from "node:assert/strict";
import { ByteReader, MAX_READ_BUFFER, MIN_READ_BUFFER } from "./byte_reader.ts";

/** A byte stream that offers `total` bytes, `step` at a time, counting from 0 mod 256. */
function byteStream(total: number, step: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    type: "bytes",
    pull(ctrl) {
      const n = Math.min(step, total - sent);
      if (n === 0) {
        ctrl.close();
        // A BYOB read waiting on the stream is answered with an empty view.
        ctrl.byobRequest?.respond(0);
        return;
      }
      const chunk = new Uint8Array(n);
      for (let i = 0; i < n; i++) chunk[i] = (sent + i) & 0xff;
      sent += n;
      ctrl.enqueue(chunk);
    },
  });
}

Deno.test("ByteReader reads a byte stream whole, in order, into a buffer that grows up to its cap", async () => {
  const total = 6 * MAX_READ_BUFFER;
  const reader = new ByteReader(byteStream(total, MAX_READ_BUFFER));
  let seen = 0;
  let largest = 0;
  for (let bytes = await reader.read(); bytes; bytes = await reader.read()) {
    for (let i = 0; i < bytes.length; i += 4096) assert.equal(bytes[i], (seen + i) & 0xff);
    seen += bytes.length;
    largest = Math.max(largest, bytes.length);
  }
  assert.equal(seen, total);
  assert.ok(largest > MIN_READ_BUFFER && largest <= MAX_READ_BUFFER, `largest read ${largest}`);
});

Deno.test("ByteReader reads a stream that is not a byte stream chunk by chunk", async () => {
  const reader = new ByteReader(ReadableStream.from([new Uint8Array([1]), new Uint8Array([2, 3])]));
  assert.deepEqual(await reader.read(), new Uint8Array([1]));
  assert.deepEqual(await reader.read(), new Uint8Array([2, 3]));
  assert.equal(await reader.read(), undefined);
});

Deno.test("ByteReader.cancel() ends a pending read", async () => {
  const reader = new ByteReader(new ReadableStream({ type: "bytes" }));
  const pending = reader.read();
  await reader.cancel(new Error("closed"));
  assert.equal(await pending, undefined);
});

Deno.test("ByteReader with a direct reader reads into one 64 KiB buffer, even when reads fill it, and ends at null", async () => {
  const data = new Uint8Array(3 * MIN_READ_BUFFER).map((_, i) => i % 251);
  let at = 0;
  const sizes: number[] = [];
  const readInto = (p: Uint8Array) => {
    if (at === data.length) return Promise.resolve(null);
    const n = Math.min(p.length, data.length - at);
    p.set(data.subarray(at, at + n));
    at += n;
    sizes.push(p.length);
    return Promise.resolve(n);
  };
  const unused = new ReadableStream<Uint8Array>({ type: "bytes" });
  const reader = new ByteReader(unused, readInto);
  const got = new Uint8Array(data.length);
  let filled = 0;
  for (let b = await reader.read(); b; b = await reader.read()) {
    got.set(b, filled);
    filled += b.length;
  }
  assert.equal(filled, data.length);
  assert.deepEqual(got, data);
  // Every read filled it; it stayed at 64 KiB (the bulk of a frame goes through readInto()).
  assert.deepEqual(sizes, [MIN_READ_BUFFER, MIN_READ_BUFFER, MIN_READ_BUFFER]);
  assert.ok(!unused.locked, "the stream was left alone");
});

Deno.test("ByteReader.cancel() with a direct reader ends a read that the closed connection breaks", async () => {
  const broken = Promise.withResolvers<number | null>();
  const reader = new ByteReader(new ReadableStream({ type: "bytes" }), () => broken.promise);
  const pending = reader.read();
  await reader.cancel();
  broken.reject(new Deno.errors.BadResource("closed"));
  assert.equal(await pending, undefined);
  assert.equal(await reader.read(), undefined);
});

Deno.test("ByteReader.readInto() reads straight into the caller's array, ends at null, and needs a direct reader", async () => {
  const data = new Uint8Array(1000).map((_, i) => i % 251);
  let at = 0;
  const readInto = (p: Uint8Array) => {
    if (at === data.length) return Promise.resolve(null);
    const n = Math.min(p.length, 300, data.length - at);
    p.set(data.subarray(at, at + n));
    at += n;
    return Promise.resolve(n);
  };
  const reader = new ByteReader(new ReadableStream({ type: "bytes" }), readInto);
  assert.ok(reader.direct);
  const target = new Uint8Array(new SharedArrayBuffer(1000));
  let filled = 0;
  for (
    let n = await reader.readInto(target);
    n !== undefined;
    n = await reader.readInto(target.subarray(filled))
  ) {
    filled += n;
  }
  assert.equal(filled, data.length);
  assert.deepEqual([...target], [...data]);
  const streamed = new ByteReader(byteStream(10, 10));
  assert.ok(!streamed.direct);
  await assert.rejects(() => streamed.readInto(new Uint8Array(4)), TypeError);
});
