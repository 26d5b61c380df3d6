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
