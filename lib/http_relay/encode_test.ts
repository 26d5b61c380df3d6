import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeRequestHead, encodeResponseHead } from "./encode.ts";
import {
  type HeaderList,
  parseRequestHead,
  parseResponseHead,
  type RequestHead,
  type ResponseHead,
} from "./head.ts";

const decode = (b: Uint8Array) => String.fromCharCode(...b);

Deno.test("encodeRequestHead() writes the request line, 'name: value' lines and CRLF", () => {
  const bytes = encodeRequestHead({
    method: "PUT",
    target: "/x?y",
    version: "HTTP/1.1",
    headers: [["Host", "a"], ["X-Latin", "caf\u00e9"], ["X-Empty", ""]],
  });
  assert.equal(
    decode(bytes),
    "PUT /x?y HTTP/1.1\r\nHost: a\r\nX-Latin: caf\u00e9\r\nX-Empty: \r\n\r\n",
  );
  assert.equal(bytes[bytes.indexOf(0xe9)], 0xe9); // one latin1 byte, not UTF-8
  assert.equal(bytes.length, decode(bytes).length);
});

Deno.test("encodeResponseHead() writes the status line, keeping the SP before an empty reason", () => {
  assert.equal(
    decode(encodeResponseHead({
      version: "HTTP/1.0",
      status: 404,
      reason: "Not Found",
      headers: [["Content-Length", "0"]],
    })),
    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
  );
  assert.equal(
    decode(encodeResponseHead({ version: "HTTP/1.1", status: 204, reason: "", headers: [] })),
    "HTTP/1.1 204 \r\n\r\n",
  );
});

Deno.test("encodeRequestHead() rejects CR, LF or NUL in a name or value (header injection)", () => {
  const base: RequestHead = { method: "GET", target: "/", version: "HTTP/1.1", headers: [] };
  const bad: HeaderList[] = [
    [["X", "a\r\nInjected: 1"]],
    [["X", "a\nb"]],
    [["X", "a\rb"]],
    [["X", "a\0b"]],
    [["X", "\x01"]],
    [["X\r\nY", "a"]],
    [["X\n", "a"]],
    [["X\0", "a"]],
    [["", "a"]],
    [["X Y", "a"]],
    [["X:", "a"]],
    [["X", "\u0100"]],
  ];
  for (const headers of bad) {
    assert.throws(
      () => encodeRequestHead({ ...base, headers }),
      TypeError,
      JSON.stringify(headers),
    );
  }
  assert.throws(() => encodeRequestHead({ ...base, target: "/ HTTP/1.1\r\nX: y\r\n" }), TypeError);
  assert.throws(() => encodeRequestHead({ ...base, target: "/a\0" }), TypeError);
  assert.throws(() => encodeRequestHead({ ...base, target: "" }), TypeError);
  assert.throws(() => encodeRequestHead({ ...base, target: "/\u20ac" }), TypeError);
  assert.throws(() => encodeRequestHead({ ...base, method: "GET /x" }), TypeError);
  assert.throws(() => encodeRequestHead({ ...base, method: "" }), TypeError);
  assert.throws(
    () => encodeRequestHead({ ...base, version: "HTTP/2.0" as RequestHead["version"] }),
    TypeError,
  );
});

Deno.test("encodeResponseHead() rejects an injected reason or field and a status out of range", () => {
  const base: ResponseHead = { version: "HTTP/1.1", status: 200, reason: "OK", headers: [] };
  assert.throws(() => encodeResponseHead({ ...base, reason: "OK\r\nSet-Cookie: a=b" }), TypeError);
  assert.throws(() => encodeResponseHead({ ...base, reason: "O\0K" }), TypeError);
  assert.throws(() => encodeResponseHead({ ...base, headers: [["X", "a\nb"]] }), TypeError);
  assert.throws(() => encodeResponseHead({ ...base, headers: [["X\r", "a"]] }), TypeError);
  for (const status of [99, 600, 200.5, NaN, -200]) {
    assert.throws(() => encodeResponseHead({ ...base, status }), RangeError, String(status));
  }
});

const tokenArb = fc.string({
  unit: fc.constantFrom(..."!#$%&'*+-.^_`|~09azAZ"),
  minLength: 1,
  maxLength: 12,
});
/** Field values as parsed: field bytes, no leading or trailing SP/HTAB. */
const valueArb = fc.array(
  fc.oneof(
    fc.integer({ min: 0x21, max: 0x7e }),
    fc.integer({ min: 0x80, max: 0xff }),
    fc.constantFrom(0x20, 0x09),
  ),
  { maxLength: 20 },
).map((codes) => String.fromCharCode(...codes).replace(/^[ \t]+|[ \t]+$/g, ""));
const headersArb = fc.array(fc.tuple(tokenArb, valueArb), { maxLength: 10 }) as fc.Arbitrary<
  HeaderList
>;
const versionArb = fc.constantFrom("HTTP/1.0" as const, "HTTP/1.1" as const);

Deno.test("parseRequestHead() reads back what encodeRequestHead() writes", () => {
  const pathArb = fc.array(fc.integer({ min: 0x21, max: 0xff }).filter((c) => c !== 0x7f), {
    maxLength: 30,
  }).map((codes) => "/" + String.fromCharCode(...codes));
  const headArb: fc.Arbitrary<RequestHead> = fc.oneof(
    fc.record({ method: tokenArb, target: pathArb, version: versionArb, headers: headersArb }),
    fc.record({
      method: tokenArb,
      target: fc.webUrl(),
      version: versionArb,
      headers: headersArb,
    }),
    fc.record({
      method: fc.constant("CONNECT"),
      target: fc.tuple(fc.domain(), fc.integer({ min: 0, max: 65535 })).map(([h, p]) =>
        `${h}:${p}`
      ),
      version: versionArb,
      headers: headersArb,
    }),
  );
  fc.assert(
    fc.property(headArb, (head) => {
      assert.deepEqual(parseRequestHead(encodeRequestHead(head)), { ...head });
    }),
  );
});

Deno.test("parseResponseHead() reads back what encodeResponseHead() writes", () => {
  const headArb: fc.Arbitrary<ResponseHead> = fc.record({
    version: versionArb,
    status: fc.integer({ min: 100, max: 599 }),
    reason: valueArb,
    headers: headersArb,
  });
  fc.assert(
    fc.property(headArb, (head) => {
      assert.deepEqual(parseResponseHead(encodeResponseHead(head)), { ...head });
    }),
  );
});
