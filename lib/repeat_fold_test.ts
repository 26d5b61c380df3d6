import assert from "node:assert/strict";
import { type FoldSummary, OVERFLOW_KEY, RepeatFold } from "./repeat_fold.ts";

Deno.test("RepeatFold.note() lets the first events of a key through and counts the rest until the window ends", () => {
  let now = 1_000;
  const told: FoldSummary[] = [];
  const fold = new RepeatFold((s) => told.push(s), { keep: 2, windowMs: 60_000, clock: () => now });
  try {
    const passes = Array.from({ length: 5 }, () => fold.note("a").pass);
    assert.deepEqual(passes, [true, true, false, false, false]);
    assert.equal(fold.note("b").pass, true, "another key has its own window");
    now += 60_000;
    assert.equal(fold.note("a").pass, true, "a new window lets the first through again");
    assert.deepEqual(told, [{ key: "a", count: 3, first: 1_000, last: 1_000 }]);
  } finally {
    fold.close();
  }
});

Deno.test("RepeatFold shares one overflow key past maxKeys, and forgets windows that are over", () => {
  let now = 0;
  const told: FoldSummary[] = [];
  const fold = new RepeatFold((s) => told.push(s), {
    keep: 1,
    maxKeys: 3,
    windowMs: 10_000,
    clock: () => now,
  });
  for (let i = 0; i < 100; i++) fold.note(`198.51.100.${i}`);
  assert.equal(fold.size, 4, "three keys and the overflow key");
  assert.equal(fold.note("198.51.100.200").key, OVERFLOW_KEY);
  now = 20_000;
  assert.equal(fold.note("198.51.100.201").key, "198.51.100.201", "the old windows went");
  fold.close();
  assert.deepEqual(told.map((s) => [s.key, s.count]), [[OVERFLOW_KEY, 97]]);
  assert.equal(fold.note("x").pass, true, "after close() everything passes");
});

Deno.test("RepeatFold tells a window's summary when it ends, by itself", async () => {
  const told = Promise.withResolvers<FoldSummary>();
  const fold = new RepeatFold(told.resolve, { keep: 1, windowMs: 30 });
  try {
    for (let i = 0; i < 10; i++) fold.note("flood");
    const summary = await told.promise;
    assert.equal(summary.key, "flood");
    assert.equal(summary.count, 9);
    assert.equal(fold.size, 0);
  } finally {
    fold.close();
  }
});

Deno.test("RepeatFold rejects a window or keep that is not positive", () => {
  assert.throws(() => new RepeatFold(() => {}, { windowMs: 0 }), RangeError);
  assert.throws(() => new RepeatFold(() => {}, { keep: -1 }), RangeError);
});
