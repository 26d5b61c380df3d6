import assert from "node:assert/strict";
import { RateLimiter } from "./rate_limit.ts";

Deno.test("RateLimiter.take() spaces takes so the rate is not exceeded", async () => {
  const limiter = new RateLimiter(100_000); // 100 kB/s: 10 kB takes 100 ms
  const started = performance.now();
  for (let i = 0; i < 4; i++) await limiter.take(10_000);
  const ms = performance.now() - started;
  // The first take goes at once; the next three wait 100 ms each.
  assert.ok(ms >= 290, `took ${ms} ms`);
});

Deno.test("RateLimiter.take() rejects when its signal aborts, and bad rates throw", async () => {
  const limiter = new RateLimiter(1000);
  await limiter.take(10_000);
  const ctrl = new AbortController();
  const waiting = limiter.take(10, ctrl.signal);
  ctrl.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  assert.throws(() => new RateLimiter(0), RangeError);
});
