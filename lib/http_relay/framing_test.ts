import assert from "node:assert/strict";
import { type BodyFraming, requestFraming, responseFraming } from "./framing.ts";
import type { HeaderList, RequestHead, ResponseHead } from "./head.ts";
import { assertHttpError } from "./_test_helpers.ts";

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
