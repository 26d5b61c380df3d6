/**
 * The HTTP tunnel frames of `messages.ts` (HTTP_OPEN … HTTP_RESET) through the frame
 * codec: their limits on encoding and decoding, every truncation, and random
 * streams of them cut anywhere and mutated.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { concatBytes } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";
import { encodeFrame, encodePreamble, FrameDecoder } from "./frame.ts";
import { MAX_TUNNEL_DATA, type MessageInit, MessageType, TUNNEL_WINDOW } from "./messages.ts";

/** A frame as the wire has it, built by hand (no schema check on the way out). */
function rawFrame(type: number, requestId: number, header: string, body = new Uint8Array()) {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(4 + 7 + h.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 7 + h.length + body.length);
  view.setUint8(4, type);
  view.setUint32(5, requestId);
  view.setUint16(9, h.length);
  out.set(h, 11);
  out.set(body, 11 + h.length);
  return out;
}

function decode(...frames: Uint8Array[]) {
  const d = new FrameDecoder();
  return d.push(concatBytes(encodePreamble(), ...frames));
}

function assertCode(fn: () => unknown, code: string) {
  assert.throws(fn, (e) => e instanceof ProtocolError && e.code === code);
}

const tunnelFrame = fc.oneof(
  fc.record({
    type: fc.constantFrom("HTTP_OPEN", "HTTP_OPENED", "HTTP_END"),
    header: fc.constant({}),
  }),
  fc.record({
    type: fc.constant("HTTP_DATA"),
    header: fc.constant({}),
    body: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
  }),
  fc.record({
    type: fc.constant("HTTP_WINDOW"),
    header: fc.record({ credit: fc.integer({ min: 1, max: TUNNEL_WINDOW }) }),
  }),
  fc.record({
    type: fc.constant("HTTP_RESET"),
    header: fc.record({ code: fc.string({ minLength: 1, maxLength: 64 }), message: fc.string() }),
  }),
).chain((m) =>
  fc.integer({ min: 0, max: 0xffff_ffff }).map((requestId) => ({ ...m, requestId } as MessageInit))
);

Deno.test("tunnel frames: HTTP_DATA carries 1 to MAX_TUNNEL_DATA bytes, on encoding and on decoding", () => {
  const ok = decode(rawFrame(MessageType.HTTP_DATA, 5, "{}", new Uint8Array(MAX_TUNNEL_DATA)));
  assert.equal(ok[0].body.length, MAX_TUNNEL_DATA);
  for (const size of [0, MAX_TUNNEL_DATA + 1]) {
    assert.throws(
      () =>
        encodeFrame({ type: "HTTP_DATA", requestId: 1, header: {}, body: new Uint8Array(size) }),
      TypeError,
    );
    assertCode(
      () => decode(rawFrame(MessageType.HTTP_DATA, 5, "{}", new Uint8Array(size))),
      "bad_body",
    );
  }
});

Deno.test("tunnel frames: HTTP_WINDOW credit is 1..TUNNEL_WINDOW, and HTTP_RESET needs a code", () => {
  for (const credit of [0, -1, 1.5, TUNNEL_WINDOW + 1, "9"]) {
    assertCode(
      () => decode(rawFrame(MessageType.HTTP_WINDOW, 1, JSON.stringify({ credit }))),
      "bad_header",
    );
  }
  assertCode(() => decode(rawFrame(MessageType.HTTP_RESET, 1, `{"message":"x"}`)), "bad_header");
  assertCode(() => decode(rawFrame(MessageType.HTTP_OPEN, 1, `[]`)), "bad_header");
});

Deno.test("tunnel frames: a stream cut at any byte decodes its whole frames and ends as truncated", () => {
  const frames: MessageInit[] = [
    { type: "HTTP_OPEN", requestId: 7, header: {} },
    { type: "HTTP_DATA", requestId: 7, header: {}, body: new Uint8Array(300).fill(1) },
    { type: "HTTP_WINDOW", requestId: 7, header: { credit: 300 } },
    { type: "HTTP_RESET", requestId: 7, header: { code: "closed", message: "m" } },
  ];
  const encoded = frames.map(encodeFrame);
  const wire = concatBytes(encodePreamble(), ...encoded);
  const ends = encoded.reduce((acc, f) => [...acc, acc.at(-1)! + f.length], [8]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder();
    // Byte at a time up to the cut.
    let n = 0;
    for (let i = 0; i < cut; i++) n += d.push(wire.subarray(i, i + 1)).length;
    assert.equal(n, Math.max(0, ends.filter((e) => e <= cut).length - 1));
    if (ends.includes(cut) || cut === 0) d.end();
    else assertCode(() => d.end(), "truncated");
  }
});

Deno.test("tunnel frames: random frames round-trip, and mutated streams fail only with ProtocolError", () => {
  fc.assert(
    fc.property(
      fc.array(tunnelFrame, { maxLength: 8 }),
      fc.nat(),
      fc.nat(255),
      (msgs, at, byte) => {
        const wire = concatBytes(encodePreamble(), ...msgs.map(encodeFrame));
        const got = new FrameDecoder().push(wire);
        assert.deepEqual(
          got.map((m) => [m.type, m.requestId]),
          msgs.map((m) => [m.type, m.requestId]),
        );
        const mutated = wire.slice();
        mutated[at % mutated.length] = byte;
        const d = new FrameDecoder();
        try {
          d.push(mutated);
          d.end();
        } catch (e) {
          assert.ok(e instanceof ProtocolError, String(e));
        }
      },
    ),
  );
});
