import assert from "node:assert/strict";
import { ProxyError } from "./errors.ts";
import { type HeaderList, parseRequestHead, parseResponseHead, type ResponseHead } from "./head.ts";
import {
  answerHead,
  answerHeadBytes,
  type ClientView,
  forwardHead,
  hopOf,
  localAnswer,
  loopError,
  mapLocation,
  parseUpstream,
  splitTarget,
  stripPrefix,
  viaEntries,
  viaEntryKey,
} from "./rewrite.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HOP = hopOf("1.1 p2p-me");
const BASE = parseUpstream("http://127.0.0.1:5810");
const VIEW: ClientView = { base: BASE, prefix: "", host: "peer:5805", proto: "http" };

/** The fields of a head as `name: value` lines, in order. */
function lines(headers: HeaderList): string[] {
  return headers.map(([n, v]) => `${n}: ${v}`);
}

/** A request head parsed from its text (CRLFs added). */
function request(...text: string[]) {
  return parseRequestHead(encoder.encode(text.join("\r\n") + "\r\n\r\n"));
}

/** An answer head and its bytes, from its text. */
function answer(...text: string[]): [ResponseHead, Uint8Array] {
  const raw = encoder.encode(text.join("\r\n") + "\r\n\r\n");
  return [parseResponseHead(raw), raw];
}

Deno.test("hopOf() derives the key and the head ends of a Via entry, and rejects a malformed one", () => {
  const hop = hopOf("1.1 P2P-Me");
  assert.equal(hop.key, "1.1 p2p-me");
  assert.equal(decoder.decode(hop.end), "via: 1.1 P2P-Me\r\n\r\n");
  assert.equal(decoder.decode(hop.closeEnd), "via: 1.1 P2P-Me\r\nconnection: close\r\n\r\n");
  for (const bad of ["p2p", "1.1 a b", "1.1 a,b", "1.1 (a)", ""]) {
    assert.throws(() => hopOf(bad), TypeError, bad);
  }
});

Deno.test("parseUpstream() takes an upstream URL apart, IPv6 unbracketed for dialling", () => {
  assert.deepEqual(
    { ...parseUpstream("http://[::1]:8080/app/"), origin: undefined },
    {
      hostname: "::1",
      port: 8080,
      host: "[::1]:8080",
      key: "[::1]:8080",
      origin: undefined,
      path: "/app",
    },
  );
  const plain = parseUpstream("http://example.test");
  assert.deepEqual([plain.port, plain.host, plain.key, plain.path], [
    80,
    "example.test",
    "example.test:80",
    "",
  ]);
  assert.throws(() => parseUpstream("https://a"), TypeError);
  assert.throws(() => parseUpstream("not a url"), TypeError);
});

Deno.test("splitTarget() splits origin and absolute forms, and gives no path for another", () => {
  assert.deepEqual(splitTarget("/a/b?x=1&y"), ["/a/b", "?x=1&y"]);
  assert.deepEqual(splitTarget("/a"), ["/a", ""]);
  assert.deepEqual(splitTarget("http://h:1/p?q"), ["/p", "?q"]);
  assert.deepEqual(splitTarget("*"), ["", ""]);
});

Deno.test("stripPrefix() strips a prefix only at a segment boundary", () => {
  assert.equal(stripPrefix("/p/x/y", "/p"), "/x/y");
  assert.equal(stripPrefix("/p", "/p"), "/");
  assert.equal(stripPrefix("/px", "/p"), "/px");
  assert.equal(stripPrefix("/a", ""), "/a");
});

Deno.test("viaEntries() and viaEntryKey() read a Via list, comments and versions of case aside", () => {
  assert.deepEqual(viaEntries("1.1 a (comment, with comma), HTTP/1.1 B ,, 2 c"), [
    "1.1 a",
    "HTTP/1.1 B",
    "2 c",
  ]);
  assert.deepEqual(viaEntries(undefined), []);
  assert.equal(viaEntryKey("  1.1   P2P-x  extra"), "1.1 p2p-x");
});

Deno.test("loopError() answers 508 when this hop is in Via or the hops reach the limit", () => {
  assert.equal(loopError(["1.1 other"], HOP, 8, "GET /"), undefined);
  const self = loopError(["1.1 other", "1.1 P2P-ME"], HOP, 8, "GET /");
  assert.ok(self instanceof ProxyError && self.status === 508 && self.code === "loop_detected");
  assert.match(self.message, /this hop '1\.1 p2p-me' is already in its Via/);
  const many = loopError(["1 a", "1 b", "1 c"], HOP, 3, "GET /x");
  assert.match(many?.message ?? "", /went through 3 proxies, the limit is 3/);
});

Deno.test("forwardHead() drops hop-by-hop fields and sets Host, X-Forwarded-* and Via", () => {
  const head = request(
    "GET /p/x?q=1 HTTP/1.1",
    "Host: peer:5805",
    "Connection: keep-alive, X-Secret",
    "Keep-Alive: timeout=5",
    "X-Secret: s",
    "TE: trailers",
    "X-Forwarded-For: 10.0.0.1",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: spoofed",
    "Via: 1.0 front",
    "Accept: */*",
  );
  const from = { ...VIEW, remoteAddr: "127.0.0.9", upgrade: undefined };
  const tokens = new Set(["keep-alive", "x-secret"]);
  const bytes = forwardHead(head, tokens, { kind: "none" }, "/x?q=1", from, ["1.0 front"], HOP);
  const out = parseRequestHead(bytes);
  assert.equal(out.target, "/x?q=1");
  assert.deepEqual(lines(out.headers), [
    "host: 127.0.0.1:5810",
    "Accept: */*",
    "x-forwarded-for: 10.0.0.1, 127.0.0.9",
    "x-forwarded-proto: http",
    "x-forwarded-host: peer:5805",
    "via: 1.0 front, 1.1 p2p-me",
  ]);
});

Deno.test("forwardHead() keeps the codings of a chunked body and asks for an upgrade", () => {
  const head = request(
    "POST /up HTTP/1.1",
    "Transfer-Encoding: gzip, chunked",
    "Connection: Upgrade",
    "Upgrade: websocket",
  );
  const from = { ...VIEW, remoteAddr: "127.0.0.9", upgrade: "websocket" };
  const out = parseRequestHead(
    forwardHead(head, new Set(["upgrade"]), { kind: "chunked" }, "/up", from, [], HOP),
  );
  assert.deepEqual(lines(out.headers).slice(-5), [
    "x-forwarded-host: peer:5805",
    "via: 1.1 p2p-me",
    "transfer-encoding: gzip, chunked",
    "connection: upgrade",
    "upgrade: websocket",
  ]);
});

Deno.test("answerHeadBytes() passes an unchanged head on as it came, with Via (and close) at its end", () => {
  const [res, raw] = answer("HTTP/1.1 200 OK", "Content-Length: 2", "X-Odd-Case: v");
  assert.equal(
    decoder.decode(answerHeadBytes(res, raw, HOP, VIEW, true)),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd-Case: v\r\nvia: 1.1 p2p-me\r\n\r\n",
  );
  assert.equal(
    decoder.decode(answerHeadBytes(res, raw, HOP, VIEW, false)),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Odd-Case: v\r\nvia: 1.1 p2p-me\r\nconnection: close\r\n\r\n",
  );
});

Deno.test("answerHeadBytes() writes a head anew when a field changes or the version does", () => {
  const cases = [
    answer("HTTP/1.1 200 OK", "Connection: keep-alive", "Content-Length: 0"),
    answer("HTTP/1.1 302 Found", "Location: http://127.0.0.1:5810/x"),
    answer("HTTP/1.1 200 OK", "Via: 1.0 app"),
    answer("HTTP/1.0 200 OK", "Content-Length: 0"),
  ];
  for (const [res, raw] of cases) {
    const bytes = answerHeadBytes(res, raw, HOP, VIEW, true);
    const out = parseResponseHead(bytes);
    assert.equal(out.version, "HTTP/1.1");
    assert.ok(!out.headers.some(([n]) => n.toLowerCase() === "connection"));
    assert.match(decoder.decode(bytes), /via: (1\.0 app, )?1\.1 p2p-me\r\n\r\n$/);
  }
  assert.match(
    decoder.decode(answerHeadBytes(cases[1][0], cases[1][1], HOP, VIEW, true)),
    /Location: http:\/\/peer:5805\/x\r\n/,
  );
});

Deno.test("answerHead() drops hop-by-hop fields but a relayed body's codings, and joins Via", () => {
  const [res] = answer(
    "HTTP/1.1 200 OK",
    "Connection: X-Hop",
    "X-Hop: 1",
    "Transfer-Encoding: chunked",
    "Trailer: X-T",
    "Via: 1.1 a",
    "Via: 1.1 b",
    "Content-Location: /here",
  );
  const view = { ...VIEW, prefix: "/p" };
  assert.deepEqual(lines(answerHead(res, HOP, view, "close").headers), [
    "Transfer-Encoding: chunked",
    "Content-Location: /p/here",
    "via: 1.1 a, 1.1 b, 1.1 p2p-me",
    "connection: close",
  ]);
  const [switching] = answer(
    "HTTP/1.1 101 Switching Protocols",
    "Connection: upgrade",
    "Upgrade: websocket",
  );
  assert.deepEqual(lines(answerHead(switching, HOP, VIEW, "upgrade").headers), [
    "via: 1.1 p2p-me",
    "connection: upgrade",
    "upgrade: websocket",
  ]);
});

Deno.test("mapLocation() maps the upstream's origin and base path to the client's view", () => {
  const base = parseUpstream("http://127.0.0.1:5810/app");
  const pub = "http://peer:5805";
  const cases: [string, string, string][] = [
    ["http://127.0.0.1:5810/app/a?x#f", "/p", "http://peer:5805/p/a?x#f"],
    ["http://127.0.0.1:5810/app", "", "http://peer:5805/"],
    ["//127.0.0.1:5810/app/a", "", "http://peer:5805/a"],
    ["/app/a", "/p", "/p/a"],
    ["/elsewhere", "/p", "/p/elsewhere"],
    ["relative/path", "/p", "relative/path"],
    ["http://other.test/app/a", "/p", "http://other.test/app/a"],
    ["http://[bad", "/p", "http://[bad"],
  ];
  for (const [value, prefix, expected] of cases) {
    assert.equal(mapLocation(value, base, pub, prefix), expected, value);
  }
  // Nothing to map: a path at the root, without a prefix, stays as it is.
  assert.equal(mapLocation("/a/../b", BASE, pub, ""), "/a/../b");
});

Deno.test("localAnswer() writes a JSON error, a JSON body or none, with close when asked", () => {
  const error = decoder.decode(localAnswer(508, { code: "loop_detected", message: "m" }, true));
  assert.equal(
    error,
    "HTTP/1.1 508 Loop Detected\r\ncontent-type: application/json\r\ncontent-length: 48\r\n" +
      'cache-control: no-store\r\nconnection: close\r\n\r\n{"error":{"code":"loop_detected","message":"m"}}',
  );
  assert.equal(
    decoder.decode(localAnswer(308, undefined, false, { location: "/x/" })),
    "HTTP/1.1 308 Permanent Redirect\r\nlocation: /x/\r\ncontent-length: 0\r\n\r\n",
  );
  assert.match(
    decoder.decode(localAnswer(299, undefined, false, {}, { a: 1 })),
    /^HTTP\/1\.1 299 \r\n[^]*\r\n\r\n\{"a":1\}$/,
  );
});

Deno.test("localAnswer() names the reason of every status the relay and the gateway answer with", () => {
  const cases: [number, string][] = [
    [307, "Temporary Redirect"],
    [403, "Forbidden"],
    [408, "Request Timeout"],
    [421, "Misdirected Request"],
    [429, "Too Many Requests"],
    [431, "Request Header Fields Too Large"],
    [502, "Bad Gateway"],
    [504, "Gateway Timeout"],
    [508, "Loop Detected"],
  ];
  for (const [status, reason] of cases) {
    const head = decoder.decode(localAnswer(status, { code: "c", message: "m" }, false));
    assert.ok(head.startsWith(`HTTP/1.1 ${status} ${reason}\r\n`), head);
    assert.equal(parseResponseHead(localAnswer(status, undefined, false)).reason, reason);
  }
});
