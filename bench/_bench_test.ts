import assert from "node:assert/strict";
import { formatTable, isLoopbackUrl } from "./_bench.ts";

Deno.test("isLoopbackUrl() accepts 127.0.0.0/8 only", () => {
  assert.ok(isLoopbackUrl("http://127.0.0.1:5700/peers"));
  assert.ok(isLoopbackUrl("http://127.1.2.3:80"));
  assert.ok(!isLoopbackUrl("http://10.0.0.1:5700"));
  assert.ok(!isLoopbackUrl("http://localhost:5700"));
  assert.ok(!isLoopbackUrl("http://[::1]:5700"));
});

Deno.test("formatTable() prints one row per figure and flags", () => {
  const table = formatTable([
    {
      name: "x",
      description: "",
      status: "flagged",
      seconds: 1,
      notes: [],
      figures: [
        { name: "a req/s", value: 12345.6, unit: "req/s", note: "wrk" },
        { name: "a non-2xx", value: 3, unit: "count", flag: "3 answers were not 2xx/3xx" },
      ],
    },
    {
      name: "y",
      description: "",
      status: "skipped",
      reason: "no wrk",
      seconds: 0,
      notes: [],
      figures: [],
    },
  ]);
  const lines = table.split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[2], /^x\s+a req\/s\s+12,346\s+req\/s\s+wrk$/);
  assert.match(lines[3], /FLAG: 3 answers/);
  assert.match(lines[4], /^y\s+\(skipped\)\s+no wrk$/);
});
