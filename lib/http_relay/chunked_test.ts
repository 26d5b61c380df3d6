import assert from "node:assert/strict";
import fc from "fast-check";
import { ChunkedTracker, decodeChunked } from "./chunked.ts";
import type { HttpParseError } from "./errors.ts";
import { MAX_HEAD } from "./head.ts";
import { concatBytes } from "../../proto/bytes.ts";
import { assertHttpError, latin1 } from "./_test_helpers.ts";

/** A chunked body with extensions, an upper-case size and trailers. */
const CHUNKED = latin1(
  "5;name=value\r\nhello\r\n" +
    '1A ; a="q;\\"" ;b\r\n' + "abcdefghijklmnopqrstuvwxyz\r\n" +
    "0004\r\n\r\n\r\n\r\n" + // data that looks like line ends is skipped by count
    "0;last\r\nExpires: never\r\nX-Sum:\t1 2\r\n\r\n",
);
const NEXT = latin1("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");

/** Bytes the tracker counts for `pieces`, in order, and whether it ended. */
function track(pieces: Uint8Array[], tracker = new ChunkedTracker()): [number, boolean] {
  let total = 0;
  for (const p of pieces) total += tracker.push(p);
  return [total, tracker.done];
}

function assertBadChunked(fn: () => unknown, what = ""): HttpParseError {
  const e = assertHttpError(fn, 400, "bad_chunked", what);
  assert.match(e.message, /^Bad chunked body at byte '\d+': /);
  return e;
}

Deno.test("ChunkedTracker.push() counts exactly the body when the next request follows", () => {
  const tracker = new ChunkedTracker();
  assert.equal(tracker.done, false);
  assert.equal(tracker.push(concatBytes(CHUNKED, NEXT)), CHUNKED.length);
  assert.equal(tracker.done, true);
  assert.equal(tracker.push(NEXT), 0);
  assert.equal(tracker.push(new Uint8Array(0)), 0);
});

Deno.test("ChunkedTracker.push() finds the body end at every split point", () => {
  const stream = concatBytes(CHUNKED, NEXT);
  for (let cut = 0; cut <= stream.length; cut++) {
    const [total, done] = track([stream.subarray(0, cut), stream.subarray(cut)]);
    assert.equal(total, CHUNKED.length, `cut at ${cut}`);
    assert.ok(done);
  }
  // Also every pair of cuts over the body alone: three pieces.
  for (let a = 0; a <= CHUNKED.length; a++) {
    for (let b = a; b <= CHUNKED.length; b++) {
      const [total, done] = track([
        CHUNKED.subarray(0, a),
        CHUNKED.subarray(a, b),
        CHUNKED.subarray(b),
      ]);
      assert.equal(total, CHUNKED.length, `cuts at ${a}, ${b}`);
      assert.ok(done, `cuts at ${a}, ${b}`);
    }
  }
});

Deno.test("ChunkedTracker.push() finds the body end fed one byte at a time", () => {
  const stream = concatBytes(CHUNKED, NEXT);
  const tracker = new ChunkedTracker();
  let total = 0;
  for (let i = 0; i < stream.length; i++) {
    const n = tracker.push(stream.subarray(i, i + 1));
    assert.equal(n, i < CHUNKED.length ? 1 : 0, `byte ${i}`);
    assert.equal(tracker.done, i >= CHUNKED.length - 1, `byte ${i}`);
    total += n;
  }
  assert.equal(total, CHUNKED.length);
});

Deno.test("ChunkedTracker.push() is not done until the final CRLF of the trailers", () => {
  for (const body of ["0\r\n\r\n", "0\r\nA: b\r\n\r\n", "3\r\nabc\r\n0\r\n\r\n"]) {
    const bytes = latin1(body);
    const tracker = new ChunkedTracker();
    assert.equal(tracker.push(bytes.subarray(0, -1)), bytes.length - 1);
    assert.equal(tracker.done, false, body);
    assert.equal(tracker.push(bytes.subarray(-1)), 1);
    assert.equal(tracker.done, true, body);
  }
});

Deno.test("ChunkedTracker.push() skips large chunks by count, without looking at the data", () => {
  const size = 1 << 20;
  const tracker = new ChunkedTracker();
  assert.equal(tracker.push(latin1(size.toString(16) + "\r\n")), 8);
  const data = new Uint8Array(64 * 1024).fill(0x0d); // CRs inside the data mean nothing
  for (let sent = 0; sent < size; sent += data.length) {
    assert.equal(tracker.push(data), data.length);
    assert.equal(tracker.done, false);
  }
  assert.equal(tracker.push(latin1("\r\n0\r\n\r\nNEXT")), 7);
  assert.ok(tracker.done);
});

Deno.test("ChunkedTracker.push() takes the largest size it allows and skips it without allocating", () => {
  const tracker = new ChunkedTracker();
  // 2^53 - 1: far more than any buffer, only counted down.
  assert.equal(tracker.push(latin1("1fffffffffffff\r\nabc")), 19);
  assert.equal(tracker.done, false);
});

Deno.test("ChunkedTracker.push() rejects a huge declared size before allocating anything", () => {
  for (const size of ["ffffffffffffffff", "20000000000000", "fffffffffffffffffffffffffffffff"]) {
    const e = assertBadChunked(() => new ChunkedTracker().push(latin1(`${size}\r\n`)), size);
    assert.match(e.message, /over/);
  }
  // Over 15 digits even with leading zeros.
  assertBadChunked(() => new ChunkedTracker().push(latin1("0000000000000001\r\n")));
  assert.deepEqual(track([latin1("000000000000001\r\nx\r\n0\r\n\r\n")]), [25, true]);
});

Deno.test("ChunkedTracker.push() rejects malformed chunked bodies with 400 bad_chunked", () => {
  const cases = [
    "x\r\n",
    "\r\n",
    ";a\r\n0\r\n\r\n",
    "-1\r\n",
    "+1\r\n",
    "0x5\r\nhello\r\n",
    "5 x\r\n",
    "5 \r\nhello\r\n",
    "5\rhello\r\n",
    "5\nhello\r\n", // bare LF ends no line
    "5;a\nhello\r\n",
    "5;a\rb\r\nhello\r\n",
    "5;a\x00\r\nhello\r\n",
    "5;a\x7f\r\nhello\r\n",
    "5\r\nhelloX\r\n",
    "5\r\nhello\n0\r\n\r\n",
    "5\r\nhello\rX",
    "5\r\nhello\r\n\r\n", // a missing size line
    "0\r\nX\r\n\r\n", // trailer line without a colon
    "0\r\n: v\r\n\r\n",
    "0\r\nX : v\r\n\r\n",
    "0\r\nA: b\r\n c\r\n\r\n", // obs-fold in trailers
    "0\r\nA: b\x01\r\n\r\n",
    "0\r\nA: b\nC: d\r\n\r\n",
    "0\r\n\n",
    "0\r\n\rX",
  ];
  for (const body of cases) {
    const bytes = latin1(body);
    const whole = assertBadChunked(() => new ChunkedTracker().push(bytes), JSON.stringify(body));
    // Byte at a time it fails too, at the same byte.
    const tracker = new ChunkedTracker();
    const split = assertBadChunked(() => {
      for (let i = 0; i < bytes.length; i++) tracker.push(bytes.subarray(i, i + 1));
    }, JSON.stringify(body));
    assert.equal(split.message, whole.message);
  }
});

Deno.test("ChunkedTracker.push() names the offset of the bad byte and throws again after", () => {
  const tracker = new ChunkedTracker();
  tracker.push(latin1("3\r\nabc"));
  const e = assertBadChunked(() => tracker.push(latin1("\r\nzz\r\n")));
  assert.match(e.message, /at byte '8'/);
  assert.equal(assertBadChunked(() => tracker.push(latin1("0\r\n\r\n"))), e);
  assert.equal(tracker.done, false);
});

Deno.test("ChunkedTracker.push() caps a chunk-size line at 4096 bytes", () => {
  const ext = (n: number) => latin1(`1;${"a".repeat(n)}\r\n`);
  assert.equal(ext(4096 - 4).length, 4096);
  assert.deepEqual(track([ext(4096 - 4), latin1("x\r\n0\r\n\r\n")]), [4096 + 8, true]);
  assertBadChunked(() => new ChunkedTracker().push(ext(4096 - 3)));
  // A stream of whitespace after the size is capped too.
  assertBadChunked(() => new ChunkedTracker().push(latin1("1" + " ".repeat(5000))));
  // The cap is per line: many lines of nearly 4096 bytes are fine.
  const tracker = new ChunkedTracker();
  for (let i = 0; i < 10; i++) tracker.push(concatBytes(ext(4000), latin1("x\r\n")));
  assert.equal(tracker.push(latin1("0\r\n\r\n")), 5);
  assert.ok(tracker.done);
});

Deno.test("ChunkedTracker.push() caps the trailer section at MAX_HEAD bytes", () => {
  const line = "X: " + "a".repeat(1000) + "\r\n";
  const fits = "0\r\n" + line.repeat(Math.floor((MAX_HEAD - 2) / line.length)) + "\r\n";
  assert.deepEqual(track([latin1(fits)]), [fits.length, true]);
  const over = "0\r\n" + line.repeat(Math.ceil(MAX_HEAD / line.length)) + "\r\n";
  assertBadChunked(() => new ChunkedTracker().push(latin1(over)));
});

/** Field names: tokens. */
const tokenArb = fc.string({
  unit: fc.constantFrom(..."!#$%&'*+-.^_`|~09azAZ"),
  minLength: 1,
  maxLength: 12,
});

/** A chunked body of the given chunk sizes, with some extensions and trailers. */
function encodeChunked(sizes: number[], ext: boolean, trailers: string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [i, size] of sizes.entries()) {
    const data = Uint8Array.from({ length: size }, (_, j) => [0x0d, 0x0a, 0x30, 0x3b][(i + j) % 4]);
    parts.push(latin1(`${size.toString(16)}${ext ? ";i=" + i : ""}\r\n`), data, latin1("\r\n"));
  }
  parts.push(latin1(`0${ext ? ";end" : ""}\r\n${trailers.map((t) => t + "\r\n").join("")}\r\n`));
  return concatBytes(...parts);
}

Deno.test("ChunkedTracker.push() counts any chunked body split anywhere (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 8 }),
      fc.boolean(),
      fc.array(tokenArb.map((n) => `${n}: v`), { maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (sizes, ext, trailers, cutSeeds) => {
        const body = encodeChunked(sizes, ext, trailers);
        const stream = concatBytes(body, NEXT);
        const cuts = [...new Set(cutSeeds.map((s) => s % (stream.length + 1)))].sort((a, b) =>
          a - b
        );
        const pieces: Uint8Array[] = [];
        let prev = 0;
        for (const c of [...cuts, stream.length]) {
          pieces.push(stream.subarray(prev, c));
          prev = c;
        }
        const [total, done] = track(pieces);
        assert.equal(total, body.length);
        assert.ok(done);
      },
    ),
  );
});

Deno.test("decodeChunked() joins the chunks' data, drops extensions and trailers, ignores what follows", () => {
  const body = latin1("5;a=b\r\nhello\r\n1 ; x\r\n,\r\n6\r\n world\r\n0\r\nT: v\r\n\r\nGET /");
  assert.equal(new TextDecoder().decode(decodeChunked(body)), "hello, world");
  assert.deepEqual(decodeChunked(latin1("0\r\n\r\n")), new Uint8Array());
});

Deno.test("decodeChunked() rejects a malformed or unfinished body with 400 bad_chunked", () => {
  assertHttpError(() => decodeChunked(latin1("5\r\nhello\r\n")), 400, "bad_chunked", "unfinished");
  assertHttpError(() => decodeChunked(latin1("z\r\n")), 400, "bad_chunked", "not hex");
  assertHttpError(() => decodeChunked(latin1("2\r\nabc\r\n0\r\n\r\n")), 400, "bad_chunked");
});

Deno.test("decodeChunked() reads back any body encodeChunked() writes (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 8 }),
      fc.boolean(),
      (sizes, ext) => {
        const body = encodeChunked(sizes, ext, []);
        assert.equal(decodeChunked(body).length, sizes.reduce((a, b) => a + b, 0));
      },
    ),
  );
});
