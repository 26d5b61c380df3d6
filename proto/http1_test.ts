import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type BodyFraming,
  ChunkedTracker,
  connectionTokens,
  encodeRequestHead,
  encodeResponseHead,
  headEnd,
  type HeaderList,
  headerValue,
  headerValues,
  HOP_BY_HOP,
  HttpParseError,
  MAX_HEAD,
  MAX_HEADERS,
  parseRequestHead,
  parseResponseHead,
  requestFraming,
  type RequestHead,
  responseFraming,
  type ResponseHead,
} from "./http1.ts";
import { concatBytes } from "./bytes.ts";

// ---------------------------------------------------------------------------
// Helpers

/** A string as latin1 bytes, one byte per char. */
function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error(`Test string has a non-latin1 char at '${i}'`);
    out[i] = c;
  }
  return out;
}

function assertHttpError(
  fn: () => unknown,
  status: number,
  code: string,
  what = "",
): HttpParseError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(
    caught instanceof HttpParseError,
    `${what}: expected an HttpParseError, got '${caught}'`,
  );
  assert.equal(caught.name, "HttpParseError");
  assert.equal(caught.status, status, `${what}: ${caught.message}`);
  assert.equal(caught.code, code, `${what}: ${caught.message}`);
  return caught;
}

const req = (s: string) => parseRequestHead(latin1(s));
const res = (s: string) => parseResponseHead(latin1(s));

/** A request head with the given extra header lines. */
function withHeaders(...lines: string[]): string {
  return `GET / HTTP/1.1\r\n${lines.map((l) => l + "\r\n").join("")}\r\n`;
}

// ---------------------------------------------------------------------------
// HttpParseError and constants

Deno.test("HttpParseError carries name, status, code and cause", () => {
  const cause = new Error("inner");
  const e = new HttpParseError(400, "bad_request", "Bad request head: x", { cause });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "HttpParseError");
  assert.equal(e.status, 400);
  assert.equal(e.code, "bad_request");
  assert.equal(e.message, "Bad request head: x");
  assert.equal(e.cause, cause);
});

Deno.test("HOP_BY_HOP holds the lowercase hop-by-hop field names", () => {
  assert.deepEqual([...HOP_BY_HOP].sort(), [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
  ]);
  assert.equal(MAX_HEAD, 65536);
  assert.equal(MAX_HEADERS, 256);
});

// ---------------------------------------------------------------------------
// parseRequestHead()

Deno.test("parseRequestHead() reads an origin-form GET with fields in order, case kept, values trimmed", () => {
  const head = req(
    "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nX-Empty:\r\nx-tabs:\t v1 \t\r\nHOST:  second \r\n\r\n",
  );
  assert.deepEqual(head, {
    method: "GET",
    target: "/a/b?c=d",
    version: "HTTP/1.1",
    headers: [["Host", "example.com"], ["X-Empty", ""], ["x-tabs", "v1"], ["HOST", "second"]],
  });
});

Deno.test("parseRequestHead() reads every target form with the method it allows", () => {
  assert.equal(
    req("GET http://example.com:8080/x HTTP/1.1\r\n\r\n").target,
    "http://example.com:8080/x",
  );
  assert.equal(req("GET https://a HTTP/1.1\r\n\r\n").target, "https://a");
  assert.equal(req("OPTIONS * HTTP/1.1\r\n\r\n").target, "*");
  assert.equal(req("OPTIONS /x HTTP/1.1\r\n\r\n").target, "/x");
  assert.equal(req("CONNECT example.com:443 HTTP/1.1\r\n\r\n").target, "example.com:443");
  assert.equal(req("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").target, "[::1]:8443");
  assert.equal(req("CONNECT 127.0.0.1:65535 HTTP/1.1\r\n\r\n").target, "127.0.0.1:65535");
});

Deno.test("parseRequestHead() reads HTTP/1.0, any token method and a head without fields", () => {
  assert.deepEqual(req("POST / HTTP/1.0\r\n\r\n"), {
    method: "POST",
    target: "/",
    version: "HTTP/1.0",
    headers: [],
  });
  assert.equal(req("M-SEARCH! / HTTP/1.1\r\n\r\n").method, "M-SEARCH!");
  assert.equal(req("get / HTTP/1.1\r\n\r\n").method, "get"); // case kept, not upper-cased
});

Deno.test("parseRequestHead() decodes bytes as latin1, so every byte survives", () => {
  const raw = concatBytes(
    latin1("GET /caf"),
    Uint8Array.of(0xc3, 0xa9),
    latin1(" HTTP/1.1\r\nX: "),
  );
  const all = Uint8Array.from({ length: 0x80 }, (_, i) => 0x80 + i);
  const head = parseRequestHead(concatBytes(raw, all, Uint8Array.of(0x41), latin1("\r\n\r\n")));
  assert.equal(head.target, "/caf\u00c3\u00a9");
  assert.equal(head.headers[0][1], String.fromCharCode(...all) + "A");
  // 0x80..0x9f stay U+0080..U+009F (windows-1252 would make 0x80 the euro sign).
  assert.equal(head.headers[0][1].charCodeAt(0), 0x80);
});

Deno.test("parseRequestHead() skips up to 8 empty lines before the request line", () => {
  for (let n = 1; n <= 8; n++) {
    assert.equal(req("\r\n".repeat(n) + "GET / HTTP/1.1\r\n\r\n").target, "/", `${n} lines`);
  }
  assertHttpError(() => req("\r\n".repeat(9) + "GET / HTTP/1.1\r\n\r\n"), 400, "bad_request");
  assertHttpError(() => req("\r\n\r\n"), 400, "bad_request");
  assertHttpError(() => req("\r\n\r\n\r\n"), 400, "bad_request");
});

Deno.test("parseRequestHead() rejects a malformed request line with 400 bad_request", () => {
  for (
    const line of [
      "",
      "GET",
      "GET /",
      "GET  / HTTP/1.1",
      "GET / HTTP/1.1 ",
      " GET / HTTP/1.1",
      "GET / HTTP/1.1 extra",
      "GET\t/ HTTP/1.1",
      "GET /a b HTTP/1.1",
    ]
  ) {
    assertHttpError(() => req(`${line}\r\n\r\n`), 400, "bad_request", JSON.stringify(line));
  }
});

Deno.test("parseRequestHead() rejects a method that is not a token", () => {
  for (const method of ["G(T", 'GE"T', "GET:", "G\x01T", "G\u00e9T", "{}"]) {
    const e = assertHttpError(
      () => req(`${method} / HTTP/1.1\r\n\r\n`),
      400,
      "bad_request",
      method,
    );
    assert.match(e.message, /method/);
  }
});

Deno.test("parseRequestHead() rejects a target that is not a form its method allows", () => {
  const cases: [string, string][] = [
    ["GET", "a/b"],
    ["GET", "example.com:80"],
    ["GET", "*"],
    ["POST", "*"],
    ["GET", "http://"],
    ["GET", "http:/x"],
    ["GET", "1http://a/"],
    ["GET", "/a\x01b"],
    ["GET", "/a\x7fb"],
    ["CONNECT", "/"],
    ["CONNECT", "*"],
    ["CONNECT", "http://a:443/"],
    ["CONNECT", "example.com"],
    ["CONNECT", "example.com:"],
    ["CONNECT", "example.com:99999"],
    ["CONNECT", "example.com:44x"],
    ["CONNECT", "a/b:443"],
  ];
  for (const [method, target] of cases) {
    assertHttpError(
      () => req(`${method} ${target} HTTP/1.1\r\n\r\n`),
      400,
      "bad_request",
      `${method} ${JSON.stringify(target)}`,
    );
  }
});

Deno.test("parseRequestHead() rejects HTTP/0.9, HTTP/2.0 and other versions with 505", () => {
  for (const version of ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0"]) {
    assertHttpError(
      () => req(`GET / ${version}\r\n\r\n`),
      505,
      "version_not_supported",
      version,
    );
  }
});

Deno.test("parseRequestHead() rejects a version that is not 'HTTP/x.y' with 400", () => {
  for (const version of ["http/1.1", "HTTP/11", "HTTP/1.1x", "HTTP/1.", "HTTPS/1.1", "1.1"]) {
    assertHttpError(() => req(`GET / ${version}\r\n\r\n`), 400, "bad_request", version);
  }
});

Deno.test("parseRequestHead() rejects a header line without a colon", () => {
  const e = assertHttpError(() => req(withHeaders("Host example.com")), 400, "bad_request");
  assert.match(e.message, /no colon/);
});

Deno.test("parseRequestHead() rejects a header name with a space before the colon", () => {
  const e = assertHttpError(() => req(withHeaders("Host : a")), 400, "bad_request");
  assert.match(e.message, /whitespace before the colon/);
  assertHttpError(() => req(withHeaders("Host\t: a")), 400, "bad_request");
  assertHttpError(
    () => req(withHeaders("Transfer-Encoding : chunked")),
    400,
    "bad_request",
  );
});

Deno.test("parseRequestHead() rejects an empty or non-token header name", () => {
  for (const line of [": a", "X(y): a", "X y: a", 'X"y: a', "X\u00e9: a", "X\x00: a", "[x]: a"]) {
    assertHttpError(() => req(withHeaders(line)), 400, "bad_request", JSON.stringify(line));
  }
});

Deno.test("parseRequestHead() rejects a control character other than HTAB in a value", () => {
  for (const value of ["a\x00b", "a\x01", "\x1b[31m", "a\x7fb", "a\rb", "a\nb", "a\x0bb"]) {
    assertHttpError(
      () => req(withHeaders(`X: ${value}`)),
      400,
      "bad_request",
      JSON.stringify(value),
    );
  }
  assert.deepEqual(req(withHeaders("X: a\tb")).headers, [["X", "a\tb"]]);
  assert.deepEqual(req(withHeaders('X: a:b; c="d"')).headers, [["X", 'a:b; c="d"']]);
});

Deno.test("parseRequestHead() rejects obs-fold continuation lines", () => {
  const e = assertHttpError(
    () => req(withHeaders("X: a", " continued")),
    400,
    "bad_request",
  );
  assert.match(e.message, /obs-fold/);
  assertHttpError(() => req(withHeaders("X: a", "\tcontinued")), 400, "bad_request");
  // Whitespace between the request line and the first field is the same fault.
  assertHttpError(() => req(withHeaders(" X: a")), 400, "bad_request");
});

Deno.test("parseRequestHead() rejects bare LF or bare CR line endings", () => {
  assertHttpError(() => req("GET / HTTP/1.1\nHost: a\n\n"), 400, "bad_request");
  assertHttpError(() => req("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400, "bad_request");
  assertHttpError(() => req("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400, "bad_request");
  assertHttpError(() => req("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400, "bad_request");
});

Deno.test("parseRequestHead() rejects bytes that do not end in one CRLFCRLF", () => {
  assertHttpError(() => req("GET / HTTP/1.1\r\nHost: a\r\n"), 400, "bad_request");
  assertHttpError(() => req("GET / HTTP/1.1\r\n\r\nGET"), 400, "bad_request");
  assertHttpError(
    () => req("GET / HTTP/1.1\r\nA: 1\r\n\r\nB: 2\r\n\r\n"),
    400,
    "bad_request",
  );
  assertHttpError(() => parseRequestHead(new Uint8Array(0)), 400, "bad_request");
});

Deno.test("parseRequestHead() rejects a head over MAX_HEAD bytes with 431", () => {
  const prefix = "GET / HTTP/1.1\r\nX: ";
  const exact = prefix + "a".repeat(MAX_HEAD - prefix.length - 4) + "\r\n\r\n";
  assert.equal(exact.length, MAX_HEAD);
  assert.equal(req(exact).headers[0][1].length, MAX_HEAD - prefix.length - 4);
  const over = prefix + "a".repeat(MAX_HEAD - prefix.length - 3) + "\r\n\r\n";
  assertHttpError(() => req(over), 431, "head_too_large");
});

Deno.test("parseRequestHead() rejects more than MAX_HEADERS fields with 431", () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}`);
  assert.equal(req(withHeaders(...fields(MAX_HEADERS))).headers.length, MAX_HEADERS);
  assertHttpError(() => req(withHeaders(...fields(MAX_HEADERS + 1))), 431, "head_too_large");
});

Deno.test("parseRequestHead() quotes and escapes the bad value in its message", () => {
  const e = assertHttpError(() => req(withHeaders("X\x01'y: a")), 400, "bad_request");
  assert.equal(e.message, "Bad request head: header name 'X\\x01\\'y' is not a token");
  const long = assertHttpError(() => req(withHeaders("a".repeat(1000))), 400, "bad_request");
  assert.ok(long.message.length < 200, long.message);
});

// ---------------------------------------------------------------------------
// parseResponseHead()

Deno.test("parseResponseHead() reads a status line, its reason and fields", () => {
  assert.deepEqual(res("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX:  y \r\n\r\n"), {
    version: "HTTP/1.1",
    status: 200,
    reason: "OK",
    headers: [["Content-Length", "5"], ["X", "y"]],
  });
  assert.equal(res("HTTP/1.0 404 Not  Found here\r\n\r\n").reason, "Not  Found here");
  assert.equal(res("HTTP/1.0 404 Not Found\r\n\r\n").version, "HTTP/1.0");
  assert.equal(res("HTTP/1.1 101 Switching Protocols\r\n\r\n").status, 101);
  assert.equal(res("HTTP/1.1 599 \r\n\r\n").status, 599);
});

Deno.test("parseResponseHead() reads an empty reason with or without its SP", () => {
  for (const line of ["HTTP/1.1 204 ", "HTTP/1.1 204"]) {
    const head = res(`${line}\r\n\r\n`);
    assert.equal(head.status, 204);
    assert.equal(head.reason, "");
  }
  assert.equal(res("HTTP/1.1 200 \u00e9t\u00e9\tok\r\n\r\n").reason, "\u00e9t\u00e9\tok");
});

Deno.test("parseResponseHead() rejects every fault with 502 bad_upstream_head", () => {
  const cases = [
    "HTTP/1.1 20 OK\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "HTTP/1.1 600 Nope\r\n\r\n",
    "HTTP/1.1 099 Nope\r\n\r\n",
    "HTTP/1.1 abc OK\r\n\r\n",
    "HTTP/1.1 +20 OK\r\n\r\n",
    "HTTP/1.1  200 OK\r\n\r\n",
    "HTTP/1.1\r\n\r\n",
    "HTTP/2.0 200 OK\r\n\r\n",
    "HTTP/0.9 200 OK\r\n\r\n",
    "http/1.1 200 OK\r\n\r\n",
    "ICY 200 OK\r\n\r\n",
    "HTTP/1.1 200 O\x00K\r\n\r\n",
    "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
    "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
    "HTTP/1.1 200 OK\nX: a\n\n",
    "HTTP/1.1 200 OK\r\n",
    "\r\nHTTP/1.1 200 OK\r\n\r\n",
    "",
  ];
  for (const head of cases) {
    const e = assertHttpError(() => res(head), 502, "bad_upstream_head", JSON.stringify(head));
    assert.match(e.message, /^Bad upstream response head: /);
  }
});

Deno.test("parseResponseHead() rejects a head over the limits with 502, not 431", () => {
  const big = "HTTP/1.1 200 OK\r\nX: " + "a".repeat(MAX_HEAD) + "\r\n\r\n";
  assertHttpError(() => res(big), 502, "bad_upstream_head");
  const many = "HTTP/1.1 200 OK\r\n" + "X: y\r\n".repeat(MAX_HEADERS + 1) + "\r\n";
  assertHttpError(() => res(many), 502, "bad_upstream_head");
});

// ---------------------------------------------------------------------------
// encodeRequestHead() / encodeResponseHead()

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

// ---------------------------------------------------------------------------
// headEnd()

const HEAD = latin1("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n");
const STREAM = concatBytes(HEAD, latin1("abcGET / HTTP/1.1\r\n\r\n"));

Deno.test("headEnd() finds the end of a head fed in two parts, at every split", () => {
  for (let cut = 0; cut <= STREAM.length; cut++) {
    const buf = new Uint8Array(STREAM.length + 100); // spare room past `length` is ignored
    buf.set(STREAM.subarray(0, cut));
    const first = headEnd(buf, cut);
    assert.equal(first, cut >= HEAD.length ? HEAD.length : -1, `first part, cut at ${cut}`);
    buf.set(STREAM.subarray(cut), cut);
    assert.equal(headEnd(buf, STREAM.length), HEAD.length, `whole, cut at ${cut}`);
    if (first < 0) {
      const from = Math.max(0, cut - 3);
      assert.equal(headEnd(buf, STREAM.length, from), HEAD.length, `from ${from}`);
    }
  }
});

Deno.test("headEnd() finds the end of a head fed one byte at a time, rescanning from length - 3", () => {
  const buf = new Uint8Array(STREAM.length);
  let found = -1;
  for (let length = 1; length <= STREAM.length && found < 0; length++) {
    buf[length - 1] = STREAM[length - 1];
    found = headEnd(buf, length, Math.max(0, length - 1 - 3));
    if (found >= 0) assert.equal(length, HEAD.length);
  }
  assert.equal(found, HEAD.length);
});

Deno.test("headEnd() returns -1 without a CRLFCRLF and ignores bytes past length", () => {
  assert.equal(headEnd(new Uint8Array(0), 0), -1);
  assert.equal(headEnd(latin1("GET / HTTP/1.1\r\n\r"), 17), -1);
  assert.equal(headEnd(latin1("GET / HTTP/1.1\n\n"), 16), -1);
  assert.equal(headEnd(latin1("ab\r\n\r\n"), 5), -1);
  assert.equal(headEnd(latin1("ab\r\n\r\n"), 6), 6);
  assert.equal(headEnd(latin1("ab\r\n\r\n"), 6, 3), -1); // `from` past the CRLFCRLF's start
});

Deno.test("headEnd() skips up to 8 leading empty lines, then takes the first CRLFCRLF", () => {
  for (let n = 1; n <= 8; n++) {
    const bytes = concatBytes(latin1("\r\n".repeat(n)), HEAD);
    assert.equal(headEnd(bytes, bytes.length), bytes.length, `${n} lines`);
    assert.equal(parseRequestHead(bytes).target, "/x");
    // Incrementally too: nothing is found while only empty lines have arrived.
    for (let cut = 0; cut < bytes.length; cut++) {
      assert.equal(headEnd(bytes, cut), -1, `${n} lines, cut at ${cut}`);
    }
  }
  const nine = concatBytes(latin1("\r\n".repeat(9)), HEAD);
  const end = headEnd(nine, nine.length);
  assert.equal(end, 4);
  assertHttpError(() => parseRequestHead(nine.subarray(0, end)), 400, "bad_request");
});

Deno.test("headEnd() rejects a length out of range", () => {
  assert.throws(() => headEnd(new Uint8Array(4), 5), RangeError);
  assert.throws(() => headEnd(new Uint8Array(4), -1), RangeError);
  assert.throws(() => headEnd(new Uint8Array(4), 1.5), RangeError);
  assert.equal(headEnd(latin1("ab\r\n\r\n"), 6, -10), 6);
});

// ---------------------------------------------------------------------------
// Header helpers

Deno.test("headerValues() and headerValue() match names case-insensitively, in order", () => {
  const headers: HeaderList = [["Accept", "a"], ["X", "1"], ["accept", "b, c"], ["ACCEPT", ""]];
  assert.deepEqual(headerValues(headers, "ACCEPT"), ["a", "b, c", ""]);
  assert.deepEqual(headerValues(headers, "missing"), []);
  assert.equal(headerValue(headers, "accept"), "a, b, c, ");
  assert.equal(headerValue(headers, "x"), "1");
  assert.equal(headerValue(headers, "missing"), undefined);
});

Deno.test("connectionTokens() lowercases the options of every Connection field", () => {
  const headers: HeaderList = [
    ["Connection", "close, Upgrade"],
    ["Host", "a"],
    ["connection", " ,Keep-Alive ,, X-Foo\t"],
  ];
  assert.deepEqual(connectionTokens(headers), new Set(["close", "upgrade", "keep-alive", "x-foo"]));
  assert.deepEqual(connectionTokens([]), new Set());
});

// ---------------------------------------------------------------------------
// requestFraming()

function request(headers: HeaderList, version: RequestHead["version"] = "HTTP/1.1"): RequestHead {
  return { method: "POST", target: "/", version, headers };
}

Deno.test("requestFraming() reads none, length and chunked", () => {
  const cases: [HeaderList, BodyFraming][] = [
    [[], { kind: "none" }],
    [[["Content-Length", "0"]], { kind: "none" }],
    [[["Content-Length", "000"]], { kind: "none" }],
    [[["Content-Length", "5"]], { kind: "length", length: 5 }],
    [[["content-length", "05"]], { kind: "length", length: 5 }],
    [[["Content-Length", "5, 5"]], { kind: "length", length: 5 }],
    [[["Content-Length", "5"], ["Content-Length", "5"]], { kind: "length", length: 5 }],
    [[["Content-Length", "999999999999999"]], { kind: "length", length: 999999999999999 }],
    [[["Transfer-Encoding", "chunked"]], { kind: "chunked" }],
    [[["transfer-encoding", "CHUNKED"]], { kind: "chunked" }],
    [[["Transfer-Encoding", "gzip, chunked"]], { kind: "chunked" }],
    [[["Transfer-Encoding", "gzip"], ["Transfer-Encoding", "chunked"]], { kind: "chunked" }],
    [[["Transfer-Encoding", "chunked,"]], { kind: "chunked" }],
  ];
  for (const [headers, framing] of cases) {
    assert.deepEqual(requestFraming(request(headers)), framing, JSON.stringify(headers));
  }
  assert.deepEqual(requestFraming(request([["Content-Length", "3"]], "HTTP/1.0")), {
    kind: "length",
    length: 3,
  });
});

Deno.test("requestFraming() rejects the request smuggling cases", () => {
  const cases: [HeaderList, string][] = [
    [[["Content-Length", "5"], ["Transfer-Encoding", "chunked"]], "ambiguous_length"],
    [[["Transfer-Encoding", "chunked"], ["Content-Length", "0"]], "ambiguous_length"],
    [[["Transfer-Encoding", "gzip"], ["Content-Length", "5"]], "ambiguous_length"],
    [[["Content-Length", "5, 6"]], "bad_content_length"],
    [[["Content-Length", "5"], ["Content-Length", "6"]], "bad_content_length"],
    [[["Content-Length", "05"], ["Content-Length", "5"]], "bad_content_length"],
    [[["Content-Length", "5, 05"]], "bad_content_length"],
    [[["Content-Length", "+5"]], "bad_content_length"],
    [[["Content-Length", "-1"]], "bad_content_length"],
    [[["Content-Length", "0x5"]], "bad_content_length"],
    [[["Content-Length", "5.0"]], "bad_content_length"],
    [[["Content-Length", "5 5"]], "bad_content_length"],
    [[["Content-Length", "1e3"]], "bad_content_length"],
    [[["Content-Length", ""]], "bad_content_length"],
    [[["Content-Length", "5,"]], "bad_content_length"],
    [[["Content-Length", "\u0665"]], "bad_content_length"], // an Arabic-Indic digit
    [[["Content-Length", "1234567890123456"]], "bad_content_length"], // 16 digits
    [[["Transfer-Encoding", "gzip"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "chunked, gzip"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "chunked"], ["Transfer-Encoding", "gzip"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "chunked, chunked"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "identity"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "xchunked"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", "chunked;x=1"]], "bad_transfer_encoding"],
    [[["Transfer-Encoding", ""]], "bad_transfer_encoding"],
  ];
  for (const [headers, code] of cases) {
    assertHttpError(() => requestFraming(request(headers)), 400, code, JSON.stringify(headers));
  }
});

Deno.test("requestFraming() rejects Transfer-Encoding in an HTTP/1.0 request", () => {
  assertHttpError(
    () => requestFraming(request([["Transfer-Encoding", "chunked"]], "HTTP/1.0")),
    400,
    "bad_transfer_encoding",
  );
});

// ---------------------------------------------------------------------------
// responseFraming()

function response(
  status: number,
  headers: HeaderList = [],
  version: ResponseHead["version"] = "HTTP/1.1",
): ResponseHead {
  return { version, status, reason: "", headers };
}

Deno.test("responseFraming() follows RFC 9112 §6.3 for each status and request method", () => {
  const cl: HeaderList = [["Content-Length", "10"]];
  const te: HeaderList = [["Transfer-Encoding", "chunked"]];
  const cases: [ResponseHead, string, BodyFraming][] = [
    [response(200, cl), "HEAD", { kind: "none" }],
    [response(200, te), "HEAD", { kind: "none" }],
    [response(100), "GET", { kind: "none" }],
    [response(101, [["Upgrade", "websocket"]]), "GET", { kind: "none" }],
    [response(199, cl), "GET", { kind: "none" }],
    [response(204, cl), "GET", { kind: "none" }],
    [response(304, cl), "GET", { kind: "none" }],
    [response(200, cl), "CONNECT", { kind: "none" }],
    [response(299), "CONNECT", { kind: "none" }],
    [response(407, cl), "CONNECT", { kind: "length", length: 10 }],
    [response(200, cl), "GET", { kind: "length", length: 10 }],
    [response(200, [["content-length", "10, 10"]]), "POST", { kind: "length", length: 10 }],
    [response(200, [["Content-Length", "0"]]), "GET", { kind: "none" }],
    [response(200, te), "GET", { kind: "chunked" }],
    [response(500, [...te, ...cl]), "GET", { kind: "chunked" }],
    [response(200, [["Transfer-Encoding", "gzip, Chunked"]]), "GET", { kind: "chunked" }],
    [
      response(200, [["Transfer-Encoding", "gzip"], ["Transfer-Encoding", "chunked"]]),
      "GET",
      { kind: "chunked" },
    ],
    [response(200, [["Transfer-Encoding", "gzip"]]), "GET", { kind: "close" }],
    [response(200, [["Transfer-Encoding", "chunked, gzip"], ...cl]), "GET", { kind: "close" }],
    [response(200, te, "HTTP/1.0"), "GET", { kind: "close" }],
    [response(200), "GET", { kind: "close" }],
    [response(200, [], "HTTP/1.0"), "GET", { kind: "close" }],
    [response(404), "head", { kind: "close" }], // methods are case-sensitive
  ];
  for (const [head, method, framing] of cases) {
    assert.deepEqual(
      responseFraming(head, method),
      framing,
      `${method} -> ${head.status} ${JSON.stringify(head.headers)}`,
    );
  }
});

Deno.test("responseFraming() rejects an invalid Content-Length with 502 bad_upstream_head", () => {
  for (const value of ["5, 6", "+5", "-1", "", "abc", "1234567890123456"]) {
    assertHttpError(
      () => responseFraming(response(200, [["Content-Length", value]]), "GET"),
      502,
      "bad_upstream_head",
      value,
    );
  }
  assertHttpError(
    () =>
      responseFraming(response(200, [["Content-Length", "05"], ["Content-Length", "5"]]), "GET"),
    502,
    "bad_upstream_head",
  );
  // Not looked at when the status or method says there is no body.
  assert.deepEqual(responseFraming(response(304, [["Content-Length", "x"]]), "GET"), {
    kind: "none",
  });
});

// ---------------------------------------------------------------------------
// ChunkedTracker

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
