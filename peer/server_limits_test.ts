import assert from "node:assert/strict";
import { startedPeer } from "./_started_peer.ts";
import { ErrorBody } from "../proto/error_body.ts";

Deno.test("startPeer(): a flood of 1,000 requests without the token costs a bounded number of activity records, and each is counted", async () => {
  await using peer = await startedPeer("127.0.0.4", { name: "flooded" });
  const statuses = new Map<number, number>();
  let limited: Response | undefined;
  for (let i = 0; i < 1000; i++) {
    const res = await fetch(`${peer.httpUrl}/_p2p/status`);
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status === 429 && !limited) limited = res;
    else await res.body?.cancel();
  }
  assert.deepEqual([...statuses.keys()].sort(), [401, 429], "unauthorized, then over the rate");
  assert.ok(limited);
  assert.ok(Number(limited.headers.get("retry-after")) >= 1);
  assert.equal(ErrorBody.parse(await limited.json()).error.code, "rate_limited");
  const refusals = peer.node.log.query({ limit: 1000 }).records.filter((r) =>
    r.type === "control.refused" || r.type === "http.refused"
  );
  assert.ok(refusals.length <= 10, `${refusals.length} records for 1,000 refusals`);
  await peer.stop();
  await peer.finished;
  // At the stop the counted refusals are written, so the file accounts for all 1,000.
  const lines = (await Deno.readTextFile(`${peer.dir}/activity.jsonl`)).trim().split("\n");
  const records = lines.map((l) => JSON.parse(l)).filter((r) =>
    r.type === "control.refused" || r.type === "http.refused"
  );
  assert.ok(records.length <= 12, `${records.length} records in the file`);
  const counted = records.reduce((n, r) => n + (r.folded ? r.count : 1), 0);
  assert.equal(counted, 1000);
  const byCode = (code: string) =>
    records.filter((r) => r.code === code).reduce((n, r) => n + (r.folded ? r.count : 1), 0);
  assert.equal(byCode("unauthorized"), statuses.get(401));
  assert.equal(byCode("rate_limited"), statuses.get(429));
  assert.ok(records.every((r) => r.from === "127.0.0.1"), "each names the address");
});

Deno.test("startPeer(): rateLimit 0 (p2p peer --rate-limit 0) puts no limit on requests from one address", async () => {
  await using peer = await startedPeer("127.0.0.4", { name: "unlimited", rateLimit: 0 });
  // Past the default burst (400) and rate (200 a second) from one address.
  const statuses = new Set<number>();
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`${peer.httpUrl}/_p2p/status`);
    statuses.add(res.status);
    await res.body?.cancel();
  }
  assert.deepEqual([...statuses], [401], "every one reaches the control API");
});
