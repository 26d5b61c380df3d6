import assert from "node:assert/strict";
import { ReplayCache } from "./replay_cache.ts";

Deno.test("ReplayCache.remember() tells a value seen within its time, and forgets it after", () => {
  let now = 1000;
  const cache = new ReplayCache({ clock: () => now });
  assert.equal(cache.remember("a", 2000), "new");
  assert.equal(cache.remember("a", 2000), "seen");
  now = 2001;
  assert.equal(cache.remember("b", 3000), "new");
  assert.equal(cache.size, 1, "a is forgotten once its time is up");
  assert.equal(cache.remember("a", 3000), "new");
});

Deno.test("ReplayCache.remember() refuses new values when full of live ones, rather than forget one", () => {
  let now = 0;
  const cache = new ReplayCache({ max: 2, clock: () => now });
  assert.equal(cache.remember("a", 100), "new");
  assert.equal(cache.remember("b", 100), "new");
  assert.equal(cache.remember("c", 100), "full");
  assert.equal(cache.remember("a", 100), "seen", "nothing live was forgotten");
  now = 101;
  assert.equal(cache.remember("c", 200), "new");
});
