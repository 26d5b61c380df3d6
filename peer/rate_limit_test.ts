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

Deno.test("RateLimiter.take() gives an aborted reservation back to later takes", async () => {
  const limiter = new RateLimiter(100_000);
  await limiter.take(10_000);
  const ctrl = new AbortController();
  const abandoned = limiter.take(50_000, ctrl.signal); // would hold the line for 500 ms
  ctrl.abort(new Error("requester left"));
  await assert.rejects(abandoned, /requester left/);
  const started = performance.now();
  await limiter.take(1000);
  const ms = performance.now() - started;
  assert.ok(ms < 250, `waited ${ms} ms behind an abandoned reservation`);
});
