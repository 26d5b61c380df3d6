import assert from "node:assert/strict";
import { recordServiceEvent } from "./service_events.ts";
import { PeerLog } from "./activity.ts";

Deno.test("recordServiceEvent() folds busy rejects and failed handshakes per address and code, and records the rest as they come", async () => {
  const dir = await Deno.makeTempDir({ prefix: "p2p-node-events-" });
  try {
    const path = `${dir}/activity.jsonl`;
    const log = await PeerLog.open(path);
    for (let i = 0; i < 50; i++) {
      recordServiceEvent(log, "conn.reject", {
        remote: `198.51.100.7:${4000 + i}`,
        from: "198.51.100.7",
        code: "busy",
        reason: "too many connections from this address",
      });
      recordServiceEvent(log, "conn.error", {
        remote: `[2001:db8::1]:${4000 + i}`,
        code: "network_key_mismatch",
        reason: "wrong key",
      });
    }
    // Already folded by the service, so never folded again; other events untouched.
    for (let i = 0; i < 8; i++) {
      recordServiceEvent(log, "conn.reject", { from: "198.51.100.8", code: "rate_limited" });
      recordServiceEvent(log, "conn.open", { remote: "198.51.100.9:1" });
    }
    const now = log.query({ limit: 1000 }).records;
    const count = (type: string, code?: string) =>
      now.filter((r) => r.type === type && (code === undefined || r.code === code)).length;
    assert.equal(count("conn.reject", "busy"), 5);
    assert.equal(count("conn.error"), 5);
    assert.equal(count("conn.reject", "rate_limited"), 8);
    assert.equal(count("conn.open"), 8);
    assert.ok(now.filter((r) => r.type === "conn.error").every((r) => r.from === "2001:db8::1"));
    log.close();
    // At close the counted ones are written: the file accounts for every event.
    const records = (await Deno.readTextFile(path)).trim().split("\n").map((l) => JSON.parse(l));
    for (const [type, code] of [["conn.reject", "busy"], ["conn.error", "network_key_mismatch"]]) {
      const of = records.filter((r) => r.type === type && r.code === code);
      assert.equal(of.reduce((n, r) => n + (r.folded ? r.count : 1), 0), 50, type);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
