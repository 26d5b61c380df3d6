import assert from "node:assert/strict";
import {
  connectionTokens,
  headEnd,
  type HeaderList,
  headerValue,
  headerValues,
  HOP_BY_HOP,
  MAX_HEAD,
  MAX_HEADERS,
  parseRequestHead,
  parseResponseHead,
} from "./head.ts";
import { concatBytes } from "../../proto/bytes.ts";
import { assertHttpError, latin1 } from "./_test_helpers.ts";

const req = (s: string) => parseRequestHead(latin1(s));
const res = (s: string) => parseResponseHead(latin1(s));

/** A request head with the given extra header lines. */
function withHeaders(...lines: string[]): string {
  return `GET / HTTP/1.1\r\n${lines.map((l) => l + "\r\n").join("")}\r\n`;
}

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
