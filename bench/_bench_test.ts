import assert from "node:assert/strict";
import { formatValue, isLoopbackUrl } from "./_bench.ts";

Deno.test("isLoopbackUrl() accepts 127.0.0.0/8 only", () => {
  assert.ok(isLoopbackUrl("http://127.0.0.1:5700/peers"));
  assert.ok(isLoopbackUrl("http://127.1.2.3:80"));
  assert.ok(!isLoopbackUrl("http://10.0.0.1:5700"));
  assert.ok(!isLoopbackUrl("http://localhost:5700"));
  assert.ok(!isLoopbackUrl("http://[::1]:5700"));
});

Deno.test("formatValue() separates thousands and keeps sensible decimals", () => {
  assert.equal(formatValue(12345.6), "12,346");
  assert.equal(formatValue(42.25), "42.3");
  assert.equal(formatValue(0.61234), "0.612");
  assert.equal(formatValue(3), "3");
  assert.equal(formatValue(null), "n/a");
});
