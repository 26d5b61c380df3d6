import assert from "node:assert/strict";
import { InvalidArgumentError } from "commander";
import { dirname, parseBytes, parseHost, parsePort, parseSeconds, parseUrl } from "./options.ts";

Deno.test("parsePort() takes 0..65535 and rejects the rest", () => {
  assert.equal(parsePort("0"), 0);
  assert.equal(parsePort("65535"), 65535);
  for (const bad of ["65536", "-1", "abc", "1.5", ""]) {
    assert.throws(() => parsePort(bad), InvalidArgumentError, bad);
  }
});

Deno.test("parseBytes() understands plain numbers and binary and decimal units", () => {
  assert.equal(parseBytes("1048576"), 1048576);
  assert.equal(parseBytes("64MiB"), 64 * 1024 * 1024);
  assert.equal(parseBytes("10M"), 10 * 1024 * 1024);
  assert.equal(parseBytes("1.5GB"), 1_500_000_000);
  assert.equal(parseBytes("2k"), 2048);
  for (const bad of ["12XB", "0", "-5", "MiB", ""]) {
    assert.throws(() => parseBytes(bad), InvalidArgumentError, bad);
  }
});

Deno.test("parseSeconds(), parseHost() and parseUrl() reject malformed values", () => {
  assert.equal(parseSeconds("1.5"), 1.5);
  assert.throws(() => parseSeconds("-1"), InvalidArgumentError);
  assert.throws(() => parseSeconds("0"), InvalidArgumentError);
  assert.equal(parseHost("[::1]"), "::1");
  assert.equal(parseHost("127.0.0.2"), "127.0.0.2");
  assert.throws(() => parseHost("a b"), InvalidArgumentError);
  assert.equal(parseUrl("http://127.0.0.1:5700/"), "http://127.0.0.1:5700");
  assert.throws(() => parseUrl("ftp://x"), InvalidArgumentError);
  assert.throws(() => parseUrl("not a url"), InvalidArgumentError);
});

Deno.test("dirname() returns the folder of a path", () => {
  assert.equal(dirname("/a/b/c.kv"), "/a/b");
  assert.equal(dirname("c.kv"), ".");
  assert.equal(dirname("/c.kv"), "/");
});
