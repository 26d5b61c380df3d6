import assert from "node:assert/strict";
import { InvalidInputError } from "../proto/errors.ts";
import { CHUNK_SIZE, sha256Hex } from "../proto/manifest.ts";
import { PayloadTooLargeError } from "./errors.ts";
import { ingest } from "./upload.ts";

/** A sink that keeps the chunks it is given, by index. */
function fakeStore() {
  const chunks = new Map<number, Uint8Array>();
  const keep = (index: number, bytes: Uint8Array) => {
    chunks.set(index, bytes.slice());
    return Promise.resolve();
  };
  return Object.assign(keep, { chunks });
}

Deno.test("ingest() cuts a stream into stored chunks and returns their manifest", async () => {
  const store = fakeStore();
  const data = new Uint8Array(CHUNK_SIZE + 10).map((_, i) => i % 251);
  const parts = [
    data.subarray(0, 7),
    data.subarray(7, CHUNK_SIZE + 3),
    data.subarray(CHUNK_SIZE + 3),
  ];
  const manifest = await ingest(store, ReadableStream.from(parts), data.length);
  assert.equal(manifest.size, data.length);
  assert.deepEqual(manifest.chunks, [
    await sha256Hex(data.subarray(0, CHUNK_SIZE)),
    await sha256Hex(data.subarray(CHUNK_SIZE)),
  ]);
  assert.equal(store.chunks.size, 2);
});

Deno.test("ingest() stops reading once the stream is over the limit", async () => {
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      pulled++;
      ctrl.enqueue(new Uint8Array(1000));
    },
  });
  await assert.rejects(
    ingest(fakeStore(), endless, 2500),
    (err) => err instanceof PayloadTooLargeError && /at least 3000 bytes/.test(err.message),
  );
  assert.ok(pulled <= 4, `pulled ${pulled} parts`);
});

Deno.test("ingest() refuses an empty payload and a stream that breaks off, as the caller's doing", async () => {
  await assert.rejects(
    ingest(fakeStore(), ReadableStream.from([]), 10),
    (err) => err instanceof InvalidInputError && err.code === "empty_payload",
  );
  const broken = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      ctrl.error(new TypeError("connection reset"));
    },
  });
  await assert.rejects(
    ingest(fakeStore(), broken, 10),
    (err) => err instanceof InvalidInputError && err.code === "incomplete_body",
  );
});
