import assert from "node:assert/strict";
import fc from "fast-check";
import { HASH_BYTES, manifestFrom, manifestMessage } from "./manifest_body.ts";
import { encodeFrame, FrameDecoder } from "./frame.ts";
import { chunkCount } from "./manifest.ts";

const ID = "ef".repeat(32);

Deno.test("manifestMessage() puts each chunk hash in the body, 32 bytes each, in order", () => {
  const m = { size: 9, chunkSize: 4, chunks: ["01".repeat(32), "02".repeat(32), "ff".repeat(32)] };
  const msg = manifestMessage(5, ID, m);
  assert.equal(msg.requestId, 5);
  assert.deepEqual(msg.header, { payloadId: ID, size: 9, chunkSize: 4 });
  assert.equal(msg.body.length, 3 * HASH_BYTES);
  assert.equal(msg.body[0], 1);
  assert.equal(msg.body[HASH_BYTES], 2);
  assert.equal(msg.body[2 * HASH_BYTES + 31], 0xff);
});

Deno.test("manifestFrom() reads back what manifestMessage() wrote, through the frame codec", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 1, max: 2000 }),
      fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }),
      (chunkSize, size, name) => {
        const chunks = Array.from(
          { length: chunkCount(size, chunkSize) },
          (_, i) => (i % 256).toString(16).padStart(2, "0").repeat(32),
        );
        const frame = encodeFrame(manifestMessage(1, ID, { size, chunkSize, chunks }, name));
        const [msg] = new FrameDecoder({ expectPreamble: false }).push(frame);
        assert.equal(msg.type, "MANIFEST");
        if (msg.type !== "MANIFEST") return;
        const back = manifestFrom(msg);
        assert.deepEqual(back.manifest, { size, chunkSize, chunks });
        assert.equal(back.name, name);
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("manifestFrom() leaves the name out when the header has none", () => {
  const back = manifestFrom({
    header: { payloadId: ID, size: 1, chunkSize: 1 },
    body: new Uint8Array(32),
  });
  assert.deepEqual(back, { manifest: { size: 1, chunkSize: 1, chunks: ["00".repeat(32)] } });
  assert.ok(!("name" in back));
});
