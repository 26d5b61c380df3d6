import assert from "node:assert/strict";
import { RequestRate } from "./request_rate.ts";

Deno.test("RequestRate.take() lets a burst through, then the rate, per address", () => {
  let now = 0;
  const rate = new RequestRate({ rate: 2, burst: 3, clock: () => now });
  assert.deepEqual([1, 2, 3].map(() => rate.take("a").ok), [true, true, true]);
  const refused = rate.take("a");
  assert.ok(!refused.ok && refused.retryAfterSeconds === 1 && refused.firstRefusal);
  const again = rate.take("a");
  assert.ok(!again.ok && !again.firstRefusal, "only the first refusal of a run is reported");
  assert.equal(rate.take("b").ok, true, "another address has its own bucket");
  now = 500;
  assert.equal(rate.take("a").ok, true, "one token back after half a second at 2/s");
  assert.equal(rate.take("a").ok, false);
});

Deno.test("RequestRate with rate 0 limits nothing, and keeps at most maxAddresses buckets", () => {
  const off = new RequestRate({ rate: 0 });
  for (let i = 0; i < 1000; i++) assert.equal(off.take("a").ok, true);
  const rate = new RequestRate({ rate: 1, burst: 1, maxAddresses: 2, clock: () => 0 });
  assert.equal(rate.take("a").ok, true);
  assert.equal(rate.take("b").ok, true);
  assert.equal(rate.take("c").ok, true, "a third address pushes out the least recent");
  assert.equal(rate.take("a").ok, true, "a's bucket was forgotten: it starts full again");
});
