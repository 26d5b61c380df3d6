import assert from "node:assert/strict";
import { Scheduler } from "./scheduler.ts";

Deno.test("Scheduler.later() runs a task once after its delay", async () => {
  const scheduler = new Scheduler(() => assert.fail("no error expected"));
  const { promise, resolve } = Promise.withResolvers<number>();
  const started = performance.now();
  scheduler.later(20, () => resolve(performance.now() - started));
  assert.equal(scheduler.pending, 1);
  assert.ok(await promise >= 15);
  assert.equal(scheduler.pending, 0);
});

Deno.test("Scheduler.loop() runs again after the delay each run returns, and survives a throw", async () => {
  const errors: unknown[] = [];
  const scheduler = new Scheduler((err) => errors.push(err));
  const { promise, resolve } = Promise.withResolvers<void>();
  const delays: number[] = [];
  let runs = 0;
  scheduler.loop(0, () => {
    runs++;
    if (runs === 2) return Promise.reject(new Error("boom"));
    if (runs === 4) resolve();
    delays.push(runs);
    return Promise.resolve(runs);
  });
  await promise;
  scheduler.stop();
  assert.equal(runs, 4);
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as Error).message, "boom");
});

Deno.test("Scheduler.stop() clears every timer and schedules nothing afterwards", () => {
  const scheduler = new Scheduler(() => {});
  let ran = false;
  scheduler.later(10, () => {
    ran = true;
  });
  scheduler.loop(10, () => Promise.resolve(10));
  assert.equal(scheduler.pending, 2);
  scheduler.stop();
  scheduler.stop();
  assert.equal(scheduler.pending, 0);
  assert.ok(scheduler.stopped);
  scheduler.later(0, () => {
    ran = true;
  });
  assert.equal(scheduler.pending, 0);
  assert.ok(!ran);
});
