import { BufferPool, concatBytes } from "./bytes.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import { bitfieldFromIndices } from "./bitfield.ts";
import { FrameTooLargeError, ProtocolError, VersionMismatchError } from "./errors.ts";
import {
  encodeFrame,
  encodeFrameParts,
  encodePreamble,
  FIXED_LENGTH,
  FrameBudget,
  FrameDecoder,
  MAGIC,
  MAX_FRAME_LENGTH,
  PROTOCOL_VERSION,
} from "./frame.ts";
import { toBase64, toHex } from "./ids.ts";
import {
  MAX_BODY,
  MAX_HEADER,
  type Message,
  Message as MessageSchema,
  type MessageInit,
  MessageType,
  type MessageTypeName,
} from "./messages.ts";

// ---------------------------------------------------------------------------
// Helpers

const PEER_ID = "0123456789abcdef0123456789abcdef01234567";
const PAYLOAD_ID = "ab".repeat(32);
const enc = new TextEncoder();

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** What the decoder returns for `m`: the same message with its body filled in. */
function decoded(m: MessageInit): Message {
  return { ...m, body: m.body ?? new Uint8Array(0) } as Message;
}

/** A frame built by hand, so that tests can break any field of it. */
function rawFrame(parts: {
  type: number;
  requestId?: number;
  header: string | Uint8Array;
  headerLength?: number;
  body?: Uint8Array;
  length?: number;
}): Uint8Array {
  const header = typeof parts.header === "string" ? enc.encode(parts.header) : parts.header;
  const body = parts.body ?? new Uint8Array(0);
  const out = new Uint8Array(4 + FIXED_LENGTH + header.length + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length ?? FIXED_LENGTH + header.length + body.length);
  view.setUint8(4, parts.type);
  view.setUint32(5, parts.requestId ?? 0);
  view.setUint16(9, parts.headerLength ?? header.length);
  out.set(header, 11);
  out.set(body, 11 + header.length);
  return out;
}

/** Decodes frames (no preamble) in one push. */
function decodeFrames(stream: Uint8Array, options = {}): Message[] {
  return new FrameDecoder({ expectPreamble: false, ...options }).push(stream);
}

function assertProtocolError(fn: () => unknown, code: string): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ProtocolError, `expected a ProtocolError, got '${caught}'`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

/** One valid message of every type. */
const SAMPLES: MessageInit[] = [
  {
    type: "HELLO",
    requestId: 0,
    header: {
      peerId: PEER_ID,
      name: "alice",
      version: "0.1.0",
      ports: { chunk: 4001, pingback: 4002, http: 8080, app: 8081 },
      publicKey: "MCowBQYDK2VwAyEA_-9x",
      auth: { scheme: "ed25519-challenge", nonce: "n0", signature: "sig" },
    },
  },
  { type: "HAVE_REQ", requestId: 1, header: { payloadId: PAYLOAD_ID } },
  {
    type: "HAVE",
    requestId: 1,
    header: { payloadId: PAYLOAD_ID, chunkCount: 10 },
    body: bitfieldFromIndices(10, [0, 3, 9]),
  },
  { type: "GET_CHUNK", requestId: 2, header: { payloadId: PAYLOAD_ID, index: 3 } },
  { type: "CHUNK", requestId: 2, header: { payloadId: PAYLOAD_ID, index: 3 }, body: bytes(300) },
  { type: "PUT_CHUNK", requestId: 3, header: { payloadId: PAYLOAD_ID, index: 0 }, body: bytes(5) },
  { type: "PUT_OK", requestId: 3, header: { payloadId: PAYLOAD_ID, index: 0 } },
  { type: "MANIFEST_REQ", requestId: 4, header: { payloadId: PAYLOAD_ID } },
  {
    type: "MANIFEST",
    requestId: 4,
    header: { payloadId: PAYLOAD_ID, size: 100, chunkSize: 40 },
    body: bytes(96, 7),
  },
  { type: "PEERS_REQ", requestId: 5, header: { limit: 50 } },
  {
    type: "PEERS",
    requestId: 5,
    header: {
      peers: [
        {
          peerId: PEER_ID,
          host: "127.0.0.2",
          ports: { chunk: 4001 },
          name: "bob",
          lastSeen: 1_700_000_000_000,
        },
        { peerId: "f".repeat(40), host: "::1", ports: { chunk: 1, http: 65535 } },
      ],
    },
  },
  { type: "LOG_REQ", requestId: 6, header: { since: 5, limit: 10 } },
  { type: "PAYLOADS_REQ", requestId: 8, header: { limit: 20 } },
  { type: "SEARCH_REQ", requestId: 9, header: { q: 'tag:notes "big cat"', limit: 10 } },
  {
    type: "SEARCH",
    requestId: 9,
    header: {
      hits: [{
        payloadId: PAYLOAD_ID,
        name: "cats.txt",
        type: "text/plain",
        tags: ["notes"],
        size: 100,
        score: 1,
        snippet: [{ text: "the " }, { text: "big", mark: true }],
      }],
    },
  },
  {
    type: "PAYLOADS",
    requestId: 8,
    header: {
      payloads: [{
        payloadId: PAYLOAD_ID,
        size: 100,
        chunks: 1,
        held: 1,
        complete: true,
        name: "a.txt",
      }],
    },
  },
  {
    type: "LOG",
    requestId: 6,
    header: {
      records: [{ id: 6, ts: "2025-01-01T00:00:00.000Z", type: "peer.register", peerId: PEER_ID }],
    },
  },
  { type: "PING", requestId: 7, header: { ts: 123.5 } },
  { type: "PONG", requestId: 7, header: { ts: 123.5 } },
  {
    type: "ERROR",
    requestId: 0xffff_ffff,
    header: { code: "not_found", message: "Chunk '3' is not held" },
  },
  { type: "LINK", requestId: 0, header: { mode: "tls" }, body: Uint8Array.of(0x30, 0x82) },
  { type: "AUTH_NONCE", requestId: 0, header: { nonce: "A".repeat(43) } },
  { type: "AUTH_KEY", requestId: 0, header: { proof: "_".repeat(43) } },
  { type: "HTTP_OPEN", requestId: 3, header: {} },
  { type: "HTTP_OPENED", requestId: 3, header: {} },
  { type: "HTTP_DATA", requestId: 3, header: {}, body: Uint8Array.of(0x47, 0x45, 0x54) },
  { type: "HTTP_WINDOW", requestId: 3, header: { credit: 65536 } },
  { type: "HTTP_END", requestId: 3, header: {} },
  { type: "HTTP_RESET", requestId: 3, header: { code: "closed", message: "bye" } },
];

const SAMPLE_STREAM = concatBytes(encodePreamble(), ...SAMPLES.map(encodeFrame));
const SAMPLE_DECODED = SAMPLES.map(decoded);

// ---------------------------------------------------------------------------
// Preamble

Deno.test("encodePreamble() writes the magic, the version and the flags (zero by default)", () => {
  assert.deepEqual(MAGIC, enc.encode("P2P!"));
  assert.deepEqual(encodePreamble(), Uint8Array.of(0x50, 0x32, 0x50, 0x21, 0, 2, 0, 0));
  assert.deepEqual(encodePreamble(0x0203).subarray(4), Uint8Array.of(2, 3, 0, 0));
  assert.deepEqual(encodePreamble(2, 1).subarray(4), Uint8Array.of(0, 2, 0, 1));
  assert.throws(() => encodePreamble(2, 0x10000), RangeError);
});

Deno.test("encodePreamble() rejects a version that is not a u16", () => {
  assert.throws(() => encodePreamble(0x10000), RangeError);
  assert.throws(() => encodePreamble(-1), RangeError);
  assert.throws(() => encodePreamble(1.5), RangeError);
});

Deno.test("FrameDecoder.push() reads the preamble and exposes its version and flags", () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.preamble, undefined);
  assert.deepEqual(decoder.push(encodePreamble().subarray(0, 5)), []);
  assert.equal(decoder.preamble, undefined);
  assert.equal(decoder.buffered, 5);
  const rest = encodePreamble().subarray(5);
  rest[1] = 0x80; // a flag bit a newer peer might set: reported, not rejected
  assert.deepEqual(decoder.push(rest), []);
  assert.deepEqual(decoder.preamble, { version: PROTOCOL_VERSION, flags: 0x8000 });
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() rejects a stream with the wrong magic", () => {
  const err = assertProtocolError(
    () => new FrameDecoder().push(enc.encode("GET / HTTP/1.1\r\n")),
    "bad_magic",
  );
  assert.match(err.message, /magic/);
  assertProtocolError(() => new FrameDecoder().push(enc.encode("P2P?\0\x01\0\0")), "bad_magic");
});

Deno.test("FrameDecoder.push() rejects the wrong magic from its first differing byte", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(enc.encode("P2")), []);
  assertProtocolError(() => decoder.push(enc.encode("X")), "bad_magic");
});

Deno.test("FrameDecoder.push() rejects another protocol version with VersionMismatchError", () => {
  const decoder = new FrameDecoder();
  assert.throws(
    () => decoder.push(encodePreamble(1)),
    (e) =>
      e instanceof VersionMismatchError && e instanceof ProtocolError &&
      e.code === "version_mismatch" && e.theirs === 1 && e.ours === PROTOCOL_VERSION,
  );
});

Deno.test("FrameDecoder with expectPreamble false reads frames from the first byte", () => {
  const decoder = new FrameDecoder({ expectPreamble: false });
  assert.deepEqual(decoder.push(encodeFrame(SAMPLES[0])), [decoded(SAMPLES[0])]);
  assert.equal(decoder.preamble, undefined);
});

// ---------------------------------------------------------------------------
// Encoding and round trips

Deno.test("encodeFrame() writes a length that excludes itself, then type, requestId and header", () => {
  const frame = encodeFrame({ type: "PING", requestId: 0x01020304, header: {} });
  assert.deepEqual(
    frame,
    Uint8Array.of(0, 0, 0, 9, MessageType.PING, 1, 2, 3, 4, 0, 2, 0x7b, 0x7d),
  );
  const chunk = encodeFrame({
    type: "CHUNK",
    requestId: 1,
    header: { payloadId: PAYLOAD_ID, index: 0 },
    body: Uint8Array.of(0xde, 0xad),
  });
  const view = new DataView(chunk.buffer);
  assert.equal(view.getUint32(0), chunk.length - 4);
  assert.deepEqual(chunk.subarray(-2), Uint8Array.of(0xde, 0xad)); // raw, not base64
});

Deno.test("encodeFrame() and FrameDecoder.push() round-trip every message type", () => {
  const types = new Set(SAMPLES.map((m) => m.type));
  assert.deepEqual([...types].sort(), Object.keys(MessageType).sort());
  for (const m of SAMPLES) {
    const decoder = new FrameDecoder();
    decoder.push(encodePreamble());
    assert.deepEqual(decoder.push(encodeFrame(m)), [decoded(m)], m.type);
  }
});

Deno.test("MessageType codes are distinct: 1..16 for requests and answers, 32..34 for the link handshake", () => {
  const codes = Object.values(MessageType);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of Array.from({ length: 16 }, (_, i) => i + 1)) {
    assert.ok(codes.includes(code as never));
  }
  for (const code of [32, 33, 34]) assert.ok(codes.includes(code as never));
});

Deno.test("FrameDecoder.push() decodes a stream split at every byte boundary", () => {
  for (let cut = 0; cut <= SAMPLE_STREAM.length; cut++) {
    const decoder = new FrameDecoder();
    const got = [
      ...decoder.push(SAMPLE_STREAM.subarray(0, cut)),
      ...decoder.push(SAMPLE_STREAM.subarray(cut)),
    ];
    assert.deepEqual(got, SAMPLE_DECODED, `cut at ${cut}`);
    assert.equal(decoder.buffered, 0);
  }
});

Deno.test("FrameDecoder.push() decodes a stream fed one byte at a time", () => {
  const decoder = new FrameDecoder();
  const got: Message[] = [];
  for (let i = 0; i < SAMPLE_STREAM.length; i++) {
    got.push(...decoder.push(SAMPLE_STREAM.subarray(i, i + 1)));
  }
  assert.deepEqual(got, SAMPLE_DECODED);
  decoder.end();
});

Deno.test("FrameDecoder.push() returns nothing for a truncated frame and finishes it later", () => {
  const frame = encodeFrame(SAMPLES[4]);
  const decoder = new FrameDecoder({ expectPreamble: false });
  for (const end of [1, 4, 5, 11, frame.length - 1]) {
    const d = new FrameDecoder({ expectPreamble: false });
    assert.deepEqual(d.push(frame.subarray(0, end)), [], `first ${end} bytes`);
    assert.equal(d.buffered, end);
  }
  assert.deepEqual(decoder.push(frame.subarray(0, frame.length - 1)), []);
  assert.deepEqual(decoder.push(frame.subarray(frame.length - 1)), [decoded(SAMPLES[4])]);
  assert.deepEqual(decoder.push(new Uint8Array(0)), []);
});

Deno.test("FrameDecoder.end() rejects a stream that stops inside the preamble or a frame", () => {
  const inPreamble = new FrameDecoder();
  inPreamble.push(encodePreamble().subarray(0, 3));
  assertProtocolError(() => inPreamble.end(), "truncated");

  const inFrame = new FrameDecoder({ expectPreamble: false });
  inFrame.push(encodeFrame(SAMPLES[1]).subarray(0, 6));
  assertProtocolError(() => inFrame.end(), "truncated");
});

Deno.test("FrameDecoder.end() accepts a stream that stops on a message boundary", () => {
  new FrameDecoder().end();
  const decoder = new FrameDecoder();
  decoder.push(SAMPLE_STREAM);
  decoder.end();
});

Deno.test("FrameDecoder.push() returns bodies that do not alias the pushed bytes", () => {
  const stream = SAMPLE_STREAM.slice();
  const got = new FrameDecoder().push(stream);
  stream.fill(0);
  assert.deepEqual(got, SAMPLE_DECODED);

  // A frame spread over pushes from one reused read buffer.
  const frame = encodeFrame(SAMPLES[4]);
  const readBuffer = new Uint8Array(16);
  const decoder = new FrameDecoder({ expectPreamble: false });
  const out: Message[] = [];
  for (let off = 0; off < frame.length; off += readBuffer.length) {
    const n = Math.min(readBuffer.length, frame.length - off);
    readBuffer.set(frame.subarray(off, off + n));
    out.push(...decoder.push(readBuffer.subarray(0, n)));
  }
  readBuffer.fill(0xee);
  assert.deepEqual(out, [decoded(SAMPLES[4])]);
});

Deno.test("FrameDecoder.push() reassembles a 1 MiB chunk from 64 KiB reads", () => {
  const m: MessageInit = {
    type: "CHUNK",
    requestId: 42,
    header: { payloadId: PAYLOAD_ID, index: 7 },
    body: bytes(1024 * 1024, 3),
  };
  const frame = encodeFrame(m);
  const decoder = new FrameDecoder({ expectPreamble: false });
  const out: Message[] = [];
  for (let off = 0; off < frame.length; off += 64 * 1024) {
    out.push(...decoder.push(frame.subarray(off, off + 64 * 1024)));
    assert.ok(decoder.buffered <= frame.length);
  }
  assert.deepEqual(out, [decoded(m)]);
  assert.equal(decoder.buffered, 0);
});

Deno.test("FrameDecoder.push() keeps header fields it does not know", () => {
  const header = '{"ts":1,"future":{"x":[1,2]}}';
  const [ping] = decodeFrames(rawFrame({ type: MessageType.PING, header }));
  assert.deepEqual(ping.header, { ts: 1, future: { x: [1, 2] } });
  // And encodeFrame() sends them on.
  const again = decodeFrames(encodeFrame(ping));
  assert.deepEqual(again, [ping]);
});

Deno.test("FrameDecoder.push() does not let a '__proto__' header key change the prototype", () => {
  const header = '{"ts":1,"__proto__":{"polluted":true}}';
  const [ping] = decodeFrames(rawFrame({ type: MessageType.PING, header }));
  assert.equal(Object.getPrototypeOf(ping.header), Object.prototype);
  assert.equal((ping.header as Record<string, unknown>).polluted, undefined);
});

// ---------------------------------------------------------------------------
// Limits

Deno.test("FrameDecoder.push() rejects an absurd length 0xFFFFFFFF with FrameTooLargeError", () => {
  const decoder = new FrameDecoder({ expectPreamble: false });
  assert.throws(
    () => decoder.push(Uint8Array.of(0xff, 0xff, 0xff, 0xff, 1, 2, 3)),
    (e) =>
      e instanceof FrameTooLargeError && e.code === "frame_too_large" &&
      e.length === 0xffff_ffff && e.limit === MAX_FRAME_LENGTH,
  );
});

Deno.test("FrameDecoder.push() rejects a frame longer than the limit", () => {
  const frame = encodeFrame({ type: "PING", requestId: 1, header: { ts: 1 } }); // length 15
  const limit = frame.length - 4;
  assert.equal(decodeFrames(frame, { maxFrameLength: limit }).length, 1);
  assert.throws(
    () => decodeFrames(frame, { maxFrameLength: limit - 1 }),
    (e) => e instanceof FrameTooLargeError && e.length === limit && e.limit === limit - 1,
  );
  // Default limit: one byte over the largest legal frame.
  const over = new Uint8Array(4);
  new DataView(over.buffer).setUint32(0, MAX_FRAME_LENGTH + 1);
  assert.throws(() => decodeFrames(over), FrameTooLargeError);
  assert.equal(MAX_FRAME_LENGTH, 7 + MAX_HEADER + MAX_BODY);
});

Deno.test("FrameDecoder rejects a maxFrameLength outside 7..MAX_FRAME_LENGTH", () => {
  for (const maxFrameLength of [6, MAX_FRAME_LENGTH + 1, 100.5, NaN]) {
    assert.throws(() => new FrameDecoder({ maxFrameLength }), RangeError);
  }
});

Deno.test("FrameDecoder.push() rejects a frame length under 7", () => {
  for (let length = 0; length < FIXED_LENGTH; length++) {
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, length);
    assertProtocolError(() => decodeFrames(prefix), "bad_length");
  }
});

Deno.test("FrameDecoder.push() rejects a header length larger than the frame", () => {
  const frame = rawFrame({ type: MessageType.PING, header: "{}", headerLength: 3 });
  assertProtocolError(() => decodeFrames(frame), "bad_header_length");
  const huge = rawFrame({ type: MessageType.PING, header: "{}", headerLength: 0xffff });
  assertProtocolError(() => decodeFrames(huge), "bad_header_length");
});

Deno.test("FrameDecoder.push() rejects a body over MAX_BODY from the fixed fields alone", () => {
  const head = rawFrame({ type: MessageType.CHUNK, header: "", length: 7 + MAX_BODY + 1 });
  assertProtocolError(() => decodeFrames(head), "body_too_large");
});

// ---------------------------------------------------------------------------
// Bad content

Deno.test("FrameDecoder.push() rejects an unknown message type", () => {
  for (const type of [0, 21, 255]) {
    assertProtocolError(() => decodeFrames(rawFrame({ type, header: "{}" })), "unknown_type");
  }
  // Rejected from the fixed fields, before the rest of a long frame arrives.
  const head = rawFrame({ type: 99, header: "", length: 1000 });
  assertProtocolError(() => decodeFrames(head), "unknown_type");
});

Deno.test("FrameDecoder.push() rejects a header that is not UTF-8", () => {
  for (const header of [Uint8Array.of(0xff, 0xfe), Uint8Array.of(0x22, 0xed, 0xa0, 0x80, 0x22)]) {
    assertProtocolError(
      () => decodeFrames(rawFrame({ type: MessageType.PING, header })),
      "bad_header_encoding",
    );
  }
});

Deno.test("FrameDecoder.push() rejects a header that is not JSON", () => {
  for (const header of ["{not json", "", "{}x", "{'ts':1}"]) {
    assertProtocolError(
      () => decodeFrames(rawFrame({ type: MessageType.PING, header })),
      "bad_header_json",
    );
  }
});

Deno.test("FrameDecoder.push() rejects a header that fails its schema", () => {
  const hello = SAMPLES[0].header as Record<string, unknown>;
  const cases: [MessageTypeName, unknown][] = [
    ["HELLO", { ...hello, peerId: PEER_ID.toUpperCase() }],
    ["HELLO", { ...hello, ports: { chunk: 0 } }],
    ["HELLO", { ...hello, ports: {} }],
    ["HELLO", { ...hello, name: "x".repeat(65) }],
    ["HELLO", { ...hello, publicKey: "not base64url!" }],
    ["HELLO", { ...hello, auth: { nonce: "n" } }],
    ["GET_CHUNK", { payloadId: PAYLOAD_ID, index: -1 }],
    ["GET_CHUNK", { payloadId: PAYLOAD_ID, index: 1.5 }],
    ["GET_CHUNK", { payloadId: PAYLOAD_ID.slice(1), index: 0 }],
    ["MANIFEST", { payloadId: PAYLOAD_ID, size: 0, chunkSize: 0 }],
    ["LOG_REQ", { limit: 5000 }],
    ["LOG", { records: [{ id: -1, ts: "t", type: "x" }] }],
    ["PEERS", { peers: [{ peerId: PEER_ID, host: "a b", ports: { chunk: 1 } }] }],
    ["ERROR", { code: "x" }],
    ["PING", null],
    ["PING", []],
    ["PING", "hi"],
    ["PING", { ts: "now" }],
  ];
  for (const [type, header] of cases) {
    const frame = rawFrame({ type: MessageType[type], header: JSON.stringify(header) });
    const err = assertProtocolError(() => decodeFrames(frame), "bad_header");
    assert.match(err.message, new RegExp(`'${type}'`));
  }
});

Deno.test("FrameDecoder.push() rejects a HAVE or MANIFEST body that does not fit its header", () => {
  const have = JSON.stringify({ payloadId: PAYLOAD_ID, chunkCount: 10 });
  const manifest = JSON.stringify({ payloadId: PAYLOAD_ID, size: 100, chunkSize: 40 });
  const cases = [
    rawFrame({ type: MessageType.HAVE, header: have, body: Uint8Array.of(0xff) }),
    rawFrame({ type: MessageType.HAVE, header: have, body: Uint8Array.of(0xff, 0xff) }),
    rawFrame({ type: MessageType.MANIFEST, header: manifest, body: bytes(95) }),
  ];
  for (const frame of cases) assertProtocolError(() => decodeFrames(frame), "bad_body");
});

Deno.test("FrameDecoder.push() keeps throwing its first error", () => {
  const decoder = new FrameDecoder();
  const first = assertProtocolError(() => decoder.push(enc.encode("nope")), "bad_magic");
  assert.throws(() => decoder.push(encodePreamble()), (e) => e === first);
  assert.throws(() => decoder.end(), (e) => e === first);
});

Deno.test("encodeFrame() rejects an invalid message with TypeError", () => {
  const bad = [
    { type: "NOPE", requestId: 1, header: {} },
    { type: "PING", requestId: -1, header: {} },
    { type: "PING", requestId: 2 ** 32, header: {} },
    { type: "PING", requestId: 1.5, header: {} },
    { type: "HELLO", requestId: 1, header: { peerId: PEER_ID, name: "a", version: "1" } },
    {
      type: "HAVE",
      requestId: 1,
      header: { payloadId: PAYLOAD_ID, chunkCount: 9 },
      body: new Uint8Array(1),
    },
    { type: "CHUNK", requestId: 1, header: { payloadId: PAYLOAD_ID, index: 0 }, body: "x" },
  ];
  for (const m of bad) assert.throws(() => encodeFrame(m as MessageInit), TypeError);
});

Deno.test("encodeFrame() rejects a header over MAX_HEADER or a body over MAX_BODY", () => {
  const message = "x".repeat(MAX_HEADER);
  assert.throws(
    () => encodeFrame({ type: "ERROR", requestId: 1, header: { code: "c", message } }),
    RangeError,
  );
  const body = new Uint8Array(MAX_BODY + 1);
  assert.throws(
    () =>
      encodeFrame({
        type: "CHUNK",
        requestId: 1,
        header: { payloadId: PAYLOAD_ID, index: 0 },
        body,
      }),
    RangeError,
  );
});

// ---------------------------------------------------------------------------
// Properties

/** Plain-object records (as JSON.parse gives) whose `optional` keys may be left out. */
function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }, optional: (keyof T)[] = []) {
  const requiredKeys = (Object.keys(model) as (keyof T)[]).filter((k) => !optional.includes(k));
  return fc.record(model, { requiredKeys, noNullPrototype: true });
}
const hexArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map(toHex);
const peerIdArb = hexArb(20);
const payloadIdArb = hexArb(32);
const requestIdArb = fc.integer({ min: 0, max: 0xffff_ffff });
const portArb = fc.integer({ min: 1, max: 65535 });
const portsArb = record({ chunk: portArb, pingback: portArb, http: portArb, app: portArb }, [
  "pingback",
  "http",
  "app",
]);
/** Strings of at most `2 * n` UTF-16 units, lone surrogates included. */
const textArb = (n: number, minLength = 0) =>
  fc.string({ unit: "binary", minLength, maxLength: n });
/** Finite numbers that survive JSON (no -0). */
const numberArb = (min?: number) =>
  fc.double({ min, noNaN: true, noDefaultInfinity: true }).map((x) => x + 0);
const base64urlArb = fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) =>
  toBase64(b).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_")
);
const hostArb = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
const bodyArb = fc.uint8Array({ maxLength: 300 });
const chunkHeaderArb = record({ payloadId: payloadIdArb, index: fc.nat() });

function msg<T extends MessageTypeName>(
  type: T,
  parts: fc.Arbitrary<{ header: unknown; body?: Uint8Array }>,
): fc.Arbitrary<MessageInit> {
  return fc.tuple(requestIdArb, parts).map(([requestId, p]) =>
    ({ type, requestId, ...p }) as MessageInit
  );
}
const headerOnly = (header: fc.Arbitrary<unknown>) => header.map((h) => ({ header: h }));

const messageArb: fc.Arbitrary<MessageInit> = fc.oneof(
  msg(
    "HELLO",
    headerOnly(record({
      peerId: peerIdArb,
      name: textArb(32),
      version: textArb(32, 1),
      ports: portsArb,
      publicKey: base64urlArb,
      auth: record({ scheme: textArb(32, 1), nonce: textArb(20), signature: base64urlArb }, [
        "nonce",
        "signature",
      ]),
    }, ["publicKey", "auth"])),
  ),
  msg("HAVE_REQ", headerOnly(record({ payloadId: payloadIdArb }))),
  msg(
    "HAVE",
    fc.tuple(payloadIdArb, fc.integer({ min: 0, max: 200 })).chain(([payloadId, n]) =>
      fc.subarray(Array.from({ length: n }, (_, i) => i)).map((held) => ({
        header: { payloadId, chunkCount: n },
        body: bitfieldFromIndices(n, held),
      }))
    ),
  ),
  msg("GET_CHUNK", headerOnly(chunkHeaderArb)),
  msg("CHUNK", record({ header: chunkHeaderArb, body: bodyArb })),
  msg("PUT_CHUNK", record({ header: chunkHeaderArb, body: bodyArb })),
  msg("PUT_OK", headerOnly(chunkHeaderArb)),
  msg("MANIFEST_REQ", headerOnly(record({ payloadId: payloadIdArb }))),
  msg(
    "MANIFEST",
    record({
      payloadId: payloadIdArb,
      size: fc.integer({ min: 0, max: 200 }),
      chunkSize: fc.integer({ min: 1, max: 64 }),
    }).chain((header) => {
      const n = Math.ceil(header.size / header.chunkSize) * 32;
      return fc.uint8Array({ minLength: n, maxLength: n }).map((body) => ({ header, body }));
    }),
  ),
  msg("PEERS_REQ", headerOnly(record({ limit: fc.integer({ min: 1, max: 1000 }) }, ["limit"]))),
  msg(
    "PEERS",
    headerOnly(record({
      peers: fc.array(
        record({
          peerId: peerIdArb,
          host: hostArb,
          ports: portsArb,
          name: textArb(32),
          lastSeen: numberArb(0),
        }, ["name", "lastSeen"]),
        { maxLength: 4 },
      ),
    })),
  ),
  msg(
    "LOG_REQ",
    headerOnly(
      record({ since: fc.nat(), limit: fc.integer({ min: 1, max: 1000 }) }, ["since", "limit"]),
    ),
  ),
  msg(
    "LOG",
    headerOnly(record({
      records: fc.array(
        record({ id: fc.nat(), ts: textArb(30), type: textArb(20, 1), detail: textArb(20) }, [
          "detail",
        ]),
        { maxLength: 4 },
      ),
    })),
  ),
  msg("PING", headerOnly(record({ ts: numberArb() }, ["ts"]))),
  msg("PONG", headerOnly(record({ ts: numberArb() }, ["ts"]))),
  msg("ERROR", headerOnly(record({ code: textArb(32, 1), message: textArb(100) }))),
);

/** Cuts `stream` at the given points (any naturals, taken modulo its length + 1). */
function split(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [0, ...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b)];
  points.push(stream.length);
  return points.slice(1).map((end, i) => stream.subarray(points[i], end));
}

Deno.test("FrameDecoder.push() decodes any valid messages however the stream is cut", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.boolean(),
      (messages, cuts, withPreamble) => {
        const frames = messages.map(encodeFrame);
        const stream = concatBytes(...(withPreamble ? [encodePreamble()] : []), ...frames);
        const decoder = new FrameDecoder({ expectPreamble: withPreamble });
        const got = split(stream, cuts).flatMap((piece) => decoder.push(piece));
        assert.deepEqual(got, messages.map(decoded));
        assert.equal(decoder.buffered, 0);
        decoder.end();
      },
    ),
    { numRuns: 200 },
  );
});

const KNOWN_CODES = new Set([
  "bad_magic",
  "version_mismatch",
  "frame_too_large",
  "bad_length",
  "bad_header_length",
  "body_too_large",
  "unknown_type",
  "bad_header_encoding",
  "bad_header_json",
  "bad_header",
  "bad_body",
]);

/** Feeds pieces to a decoder; checks it only ever yields valid messages or a known ProtocolError. */
function feedGarbage(decoder: FrameDecoder, pieces: Uint8Array[]): void {
  for (const piece of pieces) {
    let out: Message[];
    try {
      out = decoder.push(piece);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `push() threw a non-protocol error: ${e}`);
      assert.ok(KNOWN_CODES.has(e.code), `push() threw unexpected code '${e.code}'`);
      return;
    }
    for (const m of out) assert.ok(MessageSchema.safeParse(m).success);
    assert.ok(decoder.buffered <= 4 + decoder.maxFrameLength);
  }
}

Deno.test("FrameDecoder.push() only yields messages or ProtocolErrors for arbitrary bytes", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 300 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.boolean(),
      fc.constantFrom(undefined, 7, 64, 1000),
      (garbage, cuts, withPreamble, maxFrameLength) => {
        // Half the time behind a good preamble, so that frame parsing gets the garbage.
        const stream = withPreamble ? concatBytes(encodePreamble(), garbage) : garbage;
        const decoder = new FrameDecoder({ expectPreamble: withPreamble, maxFrameLength });
        feedGarbage(decoder, split(stream, cuts));
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("FrameDecoder.push() only yields messages or ProtocolErrors for corrupted streams", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (messages, flips, cuts) => {
        const stream = concatBytes(encodePreamble(), ...messages.map(encodeFrame));
        for (const [at, value] of flips) stream[at % stream.length] = value;
        feedGarbage(new FrameDecoder(), split(stream, cuts));
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("FrameDecoder with a pool reads large frames into pooled buffers and decodes the same messages", () => {
  // More buffers than messages: one push() may complete all 5 before any is given back.
  const pool = new BufferPool(150 * 1024, 8);
  // Bodies below, inside and above the pooled range (64 KiB up to the pool's size).
  const bodyArb = fc.integer({ min: 0, max: 200 * 1024 });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(bodyArb, fc.nat(255)), { minLength: 1, maxLength: 5 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (specs, cuts) => {
        const messages: MessageInit[] = specs.map(([size, seed], i) => ({
          type: "CHUNK",
          requestId: i,
          header: { payloadId: PAYLOAD_ID, index: i },
          body: bytes(size, seed),
        }));
        const frames = messages.map(encodeFrame);
        const decoder = new FrameDecoder({ expectPreamble: false, pool });
        let i = 0;
        for (const piece of split(concatBytes(...frames), cuts)) {
          for (const got of decoder.push(piece)) {
            assert.deepEqual(got, decoded(messages[i]));
            const pooled = frames[i].length - 4 >= 64 * 1024 && frames[i].length - 4 <= pool.size;
            // Given back at once, so the next frames are read over its old bytes.
            assert.equal(pool.release(got.body!), pooled, `frame ${i} pooled`);
            i++;
          }
        }
        assert.equal(i, messages.length);
        assert.equal(decoder.buffered, 0);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("encodeFrameParts() gives encodeFrame()'s bytes in two parts, the body not copied", () => {
  for (const m of SAMPLES) {
    const [head, body] = encodeFrameParts(m);
    assert.deepEqual(concatBytes(head, body), encodeFrame(m));
    if (m.body) assert.equal(body, m.body);
    else assert.equal(body.length, 0);
  }
  assert.throws(() => encodeFrameParts({ type: "PING" } as unknown as MessageInit), TypeError);
});

Deno.test("FrameDecoder with a FrameBudget takes what a partial frame grows by and gives it back when the frame completes", () => {
  const budget = new FrameBudget(4 * 1024 * 1024);
  const decoder = new FrameDecoder({ expectPreamble: false, budget });
  const frame = encodeFrame({
    type: "CHUNK",
    requestId: 1,
    header: { payloadId: "ab".repeat(32), index: 0 },
    body: new Uint8Array(1024 * 1024),
  });
  assert.deepEqual(decoder.push(frame.subarray(0, 300_000)), []);
  // The bytes after the length field, grown to what arrived (never the declared 1 MiB).
  assert.ok(budget.used >= 300_000 - 4 && budget.used < 1024 * 1024, `used ${budget.used}`);
  assert.equal(decoder.push(frame.subarray(300_000)).length, 1);
  assert.equal(budget.used, 0);
});

Deno.test("FrameDecoder.release() gives back a partial frame's bytes, and over the budget push() throws over_budget", () => {
  const budget = new FrameBudget(1024 * 1024);
  const frame = encodeFrame({
    type: "CHUNK",
    requestId: 1,
    header: { payloadId: "ab".repeat(32), index: 0 },
    body: new Uint8Array(900 * 1024),
  });
  const a = new FrameDecoder({ expectPreamble: false, budget });
  const b = new FrameDecoder({ expectPreamble: false, budget });
  a.push(frame.subarray(0, 600 * 1024));
  const heldByA = budget.used;
  assert.ok(heldByA >= 600 * 1024 - 4);
  assertProtocolError(() => b.push(frame.subarray(0, 600 * 1024)), "over_budget");
  a.release();
  b.release();
  assert.equal(budget.used, 0);
  // Once a has given its share back, a third decoder takes a whole frame.
  const c = new FrameDecoder({ expectPreamble: false, budget });
  assert.equal(c.push(frame).length, 1);
  assert.equal(budget.used, 0);
});

Deno.test("FrameDecoder.directTarget takes the rest of a frame in place, mixed with push(), and decodes the same messages", () => {
  const pool = new BufferPool(150 * 1024, 8);
  const bodyArb = fc.integer({ min: 0, max: 200 * 1024 });
  let direct = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(bodyArb, fc.nat(255)), { minLength: 1, maxLength: 5 }),
      fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 1, maxLength: 12 }),
      (specs, reads) => {
        const messages: MessageInit[] = specs.map(([size, seed], i) => ({
          type: "CHUNK",
          requestId: i,
          header: { payloadId: PAYLOAD_ID, index: i },
          body: bytes(size, seed),
        }));
        const wire = concatBytes(...messages.map(encodeFrame));
        const decoder = new FrameDecoder({ expectPreamble: false, pool });
        const got: Message[] = [];
        // As a connection reads: into the frame where the decoder offers it, else a buffer.
        for (let at = 0, r = 0; at < wire.length; r++) {
          const target = decoder.directTarget;
          const n = Math.min(reads[r % reads.length], wire.length - at, target?.length ?? Infinity);
          if (target) {
            target.set(wire.subarray(at, at + n));
            got.push(...decoder.filled(n));
            direct += n;
          } else got.push(...decoder.push(wire.slice(at, at + n)));
          at += n;
        }
        assert.deepEqual(got, messages.map(decoded));
        assert.equal(decoder.buffered, 0);
        for (const m of got) pool.release(m.body!);
      },
    ),
    { numRuns: 60 },
  );
  assert.ok(direct > 0, "some bytes were read in place");
});

Deno.test("FrameDecoder.filled() refuses a count that does not fit, and a bad frame read in place spends the decoder", () => {
  const pool = new BufferPool(150 * 1024, 2);
  const frame = encodeFrame({
    type: "CHUNK",
    requestId: 1,
    header: { payloadId: PAYLOAD_ID, index: 0 },
    body: new Uint8Array(100 * 1024),
  });
  const decoder = new FrameDecoder({ expectPreamble: false, pool });
  assert.equal(decoder.directTarget, undefined, "no frame under way");
  assert.throws(() => decoder.filled(1), RangeError);
  // The length field and the fixed fields: the header and body may then be read in place.
  assert.deepEqual(decoder.push(frame.subarray(0, 4 + FIXED_LENGTH)), []);
  const target = decoder.directTarget!;
  assert.equal(target.length, frame.length - 4 - FIXED_LENGTH);
  assert.throws(() => decoder.filled(target.length + 1), RangeError);
  assert.throws(() => decoder.filled(-1), RangeError);
  target.set(frame.subarray(4 + FIXED_LENGTH));
  target[0] = 0x78; // the header's "{" broken
  assert.deepEqual(decoder.filled(10), []);
  assert.equal(decoder.directTarget!.length, target.length - 10);
  assertProtocolError(() => decoder.filled(target.length - 10), "bad_header_json");
  assert.equal(decoder.directTarget, undefined);
  assertProtocolError(() => decoder.push(new Uint8Array(1)), "bad_header_json");
});
