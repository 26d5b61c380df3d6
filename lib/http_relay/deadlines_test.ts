import assert from "node:assert/strict";
import { Deadlines } from "./deadlines.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("Deadlines fire each armed deadline once, after its time", async () => {
  const deadlines = new Deadlines(5);
  const fired: string[] = [];
  const started = performance.now();
  const done = Promise.withResolvers<void>();
  deadlines.make(() => fired.push("late")).arm(40);
  deadlines.make(() => {
    fired.push("soon");
    assert.ok(performance.now() - started >= 10);
  }).arm(10);
  deadlines.make(() => done.resolve()).arm(60);
  await done.promise;
  assert.deepEqual(fired, ["soon", "late"]);
  deadlines.stop();
});

Deno.test("Deadline.disarm() keeps it from firing; arm() again moves its time", async () => {
  const deadlines = new Deadlines(5);
  let fired = 0;
  const d = deadlines.make(() => fired++);
  d.arm(10);
  d.disarm();
  d.arm(1_000);
  d.arm(15);
  await sleep(60);
  assert.equal(fired, 1);
  deadlines.stop();
});

Deno.test("Deadlines.stop() disarms all and ignores later arms (no timer left running)", async () => {
  const deadlines = new Deadlines(5);
  let fired = 0;
  const d = deadlines.make(() => fired++);
  d.arm(10);
  deadlines.stop();
  d.arm(10);
  await sleep(40);
  assert.equal(fired, 0);
});
