import assert from "node:assert/strict";
import { BoundedMap } from "./bounded_map.ts";

Deno.test("BoundedMap keeps the most recently set entries, at most max", () => {
  const m = new BoundedMap<string, number>(3);
  for (const [i, k] of ["a", "b", "c", "d"].entries()) m.set(k, i);
  assert.deepEqual([...m.keys()], ["b", "c", "d"]);
  // Setting again makes a key the newest; reading does not.
  m.set("b", 9);
  assert.equal(m.get("c"), 2);
  m.set("e", 4);
  assert.deepEqual([...m.entries()], [["d", 3], ["b", 9], ["e", 4]]);
  assert.equal(m.size, 3);
});

Deno.test("BoundedMap refuses a max that is not a positive integer", () => {
  for (const max of [0, -1, 1.5, NaN]) assert.throws(() => new BoundedMap(max), RangeError);
});
