import assert from "node:assert/strict";
import { ago, chunkMap, mib, tableLines } from "./format.ts";

Deno.test("mib() and ago() print sizes and times as the client commands show them", () => {
  assert.equal(mib(0), "0.0 MiB");
  assert.equal(mib(1572864), "1.5 MiB");
  const now = 1_700_000_000_000;
  assert.equal(ago(now - 12_000, now), "12s ago");
  assert.equal(ago(now - 5 * 60_000, now), "5m ago");
  assert.equal(ago(now - 90 * 60_000, now), "1.5h ago");
  assert.equal(ago(now + 5000, now), "0s ago", "a clock ahead is now");
});

Deno.test("tableLines() pads each column to its widest cell and trims line ends", () => {
  assert.deepEqual(tableLines(["PEER", "RTT"], [["ab", "12 ms"], ["abcdef", "-"]]), [
    "PEER    RTT",
    "ab      12 ms",
    "abcdef  -",
  ]);
});

Deno.test("chunkMap() marks full, partial and empty runs of positions", () => {
  // 8 positions, the first 5 held: 11111000.
  assert.equal(chunkMap("f8", 8, 8), "█████···");
  assert.equal(chunkMap("f8", 8, 4), "██▒·");
  assert.equal(chunkMap("00", 3, 3), "···");
});
