import assert from "node:assert/strict";
import {
  busiestThread,
  formatValue,
  isLoopbackUrl,
  machineBusySeconds,
  processCpuSeconds,
  threadCpuSeconds,
} from "./_bench.ts";

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

Deno.test("threadCpuSeconds() and machineBusySeconds() see a thread spin for 0.3 s", async () => {
  const threads0 = await threadCpuSeconds(Deno.pid);
  const busy0 = await machineBusySeconds();
  const cpu0 = await processCpuSeconds(Deno.pid);
  assert.ok(threads0.size >= 1, "this process has threads in /proc");
  assert.ok(busy0 !== null && cpu0 !== null);
  const until = performance.now() + 300;
  let spins = 0;
  while (performance.now() < until) spins++;
  const threads1 = await threadCpuSeconds(Deno.pid);
  const busy1 = (await machineBusySeconds())!;
  const cpu1 = (await processCpuSeconds(Deno.pid))!;
  const busiest = busiestThread(threads0, threads1);
  // Ticks are 10 ms: the spinning thread shows 0.2 s at least, and no more than the process.
  assert.ok(spins > 0 && busiest >= 0.2, `busiest thread ${busiest} CPU-s`);
  assert.ok(
    busiest <= cpu1 - cpu0 + 0.02,
    `busiest ${busiest} within the process's ${cpu1 - cpu0}`,
  );
  assert.ok(busy1 - busy0! >= busiest - 0.02, `machine busy ${busy1 - busy0!} CPU-s`);
});

Deno.test("busiestThread() takes the largest difference, a new thread counted from zero", () => {
  const before = new Map([[1, 5], [2, 1]]);
  const after = new Map([[1, 5.5], [2, 2.25], [3, 0.75]]);
  assert.equal(busiestThread(before, after), 1.25);
  assert.equal(busiestThread(new Map(), new Map()), 0);
});
