/**
 * Helpers of the codec's tests: latin1 test strings and a check on the
 * `HttpParseError` a call throws.
 *
 * @module
 */
import assert from "node:assert/strict";
import { HttpParseError } from "./errors.ts";

/** A string as latin1 bytes, one byte per char. */
export function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error(`Test string has a non-latin1 char at '${i}'`);
    out[i] = c;
  }
  return out;
}

/** Asserts that `fn` throws an `HttpParseError` with `status` and `code`, and returns it. */
export function assertHttpError(
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
