import assert from "node:assert/strict";
import { luaString, mergeReports, parseWrkReport } from "./_wrk.ts";

// Captured from wrk 4.1.0 (Debian) against the tracker.
const GET_PEERS = `Running 3s test @ http://127.0.0.1:42663/peers
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    16.31ms    8.30ms  62.72ms   81.64%
    Req/Sec     1.02k   339.65     1.73k    66.67%
  Latency Distribution
     50%   14.41ms
     75%   18.59ms
     90%   26.68ms
     99%   47.86ms
  6087 requests in 3.01s, 60.21MB read
Requests/sec:   2019.89
Transfer/sec:     19.98MB
`;

const HEALTH_WITH_ERRORS = `Running 2s test @ http://127.0.0.1:42663/health
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   154.02us  504.80us    1.30s    96.98%
    Req/Sec    12.06k     1.28k   15.29k    71.43%
  Latency Distribution
     50%   78.00us
     75%   86.00us
     90%   98.00us
     99%    2.68ms
  25161 requests in 2.10s, 3.38MB read
  Socket errors: connect 0, read 3, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:  11981.64
Transfer/sec:      1.61MB
`;

Deno.test("parseWrkReport() reads throughput, percentiles and counts of a clean run", () => {
  const r = parseWrkReport(GET_PEERS);
  assert.equal(r.requests, 6087);
  assert.equal(r.seconds, 3.01);
  assert.equal(r.requestsPerSec, 2019.89);
  assert.equal(r.latencyAvgMs, 16.31);
  assert.equal(r.latencyMaxMs, 62.72);
  assert.deepEqual(r.percentilesMs, { "50": 14.41, "75": 18.59, "90": 26.68, "99": 47.86 });
  assert.equal(r.non2xx, 0);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
  assert.equal(Math.round(r.transferPerSec), Math.round(19.98 * 1024 * 1024));
});

Deno.test("parseWrkReport() converts us and s to ms and reads error lines", () => {
  const r = parseWrkReport(HEALTH_WITH_ERRORS);
  assert.ok(Math.abs(r.percentilesMs["50"] - 0.078) < 1e-9);
  assert.equal(r.percentilesMs["99"], 2.68);
  assert.equal(r.latencyMaxMs, 1300);
  assert.equal(r.non2xx, 12);
  assert.deepEqual(r.socketErrors, { connect: 0, read: 3, write: 0, timeout: 7 });
});

Deno.test("parseWrkReport() rejects output without a latency distribution", () => {
  const plain = GET_PEERS.replace(/ {2}Latency Distribution[\s\S]*?99%.*\n/, "");
  assert.throws(() => parseWrkReport(plain), RangeError);
  assert.throws(() => parseWrkReport("wrk: connection refused"), /Requests\/sec/);
});

Deno.test("luaString() quotes text containing closing long brackets", () => {
  assert.equal(luaString(`{"a":1}`), `[[\n{"a":1}]]`);
  assert.equal(luaString("x]]y"), "[=[\nx]]y]=]");
  assert.equal(luaString("]]]=]"), "[==[\n]]]=]]==]");
});

Deno.test("mergeReports() sums requests and errors, rates over the summed time, median p50 and worst p99", () => {
  const a = parseWrkReport(GET_PEERS);
  const b = parseWrkReport(HEALTH_WITH_ERRORS);
  const m = mergeReports([a, b, a]);
  assert.equal(m.requests, 2 * a.requests + b.requests);
  assert.ok(Math.abs(m.seconds - (2 * a.seconds + b.seconds)) < 1e-9);
  assert.ok(Math.abs(m.requestsPerSec - m.requests / m.seconds) < 1e-9);
  assert.equal(m.percentilesMs["50"], a.percentilesMs["50"]);
  assert.equal(m.percentilesMs["99"], Math.max(a.percentilesMs["99"], b.percentilesMs["99"]));
  assert.equal(m.non2xx, 2 * a.non2xx + b.non2xx);
  assert.equal(m.socketErrors.read, 2 * a.socketErrors.read + b.socketErrors.read);
  assert.throws(() => mergeReports([]), RangeError);
});
