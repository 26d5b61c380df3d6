import assert from "node:assert/strict";
import { P2pError } from "../../proto/errors.ts";
import { HttpParseError, ProxyError } from "./errors.ts";

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

Deno.test("HttpParseError and ProxyError are P2pErrors with a code and an HTTP status", () => {
  const parse = new HttpParseError(431, "head_too_large", "Request head is over the limit");
  assert.ok(parse instanceof P2pError);
  assert.equal(parse.status, 431);
  const cause = new Error("refused");
  for (
    const [status, code] of [[502, "bad_gateway"], [504, "gateway_timeout"], [
      508,
      "loop_detected",
    ]] as const
  ) {
    const e = new ProxyError(status, "Cannot proxy 'GET /'", { cause });
    assert.ok(e instanceof P2pError);
    assert.equal(e.name, "ProxyError");
    assert.equal(e.status, status);
    assert.equal(e.code, code);
    assert.equal(e.cause, cause);
  }
});
